/* drain_state.c: the persisted operator drains (see drain_state.h). */
#include "core/drain_state.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int drain_state_parse(const char *text, size_t len, struct drain_state *out, char *why,
                      size_t whylen)
{
	json_error_t jerr;
	json_t *root, *v, *all, *list, *x;
	const char *key;
	size_t i;
	int r = -EBADMSG;

	memset(out, 0, sizeof(*out));
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		snprintf(why, whylen, "not JSON: %s (line %d)", jerr.text, jerr.line);
		return -EBADMSG;
	}
	v = json_object_get(root, "v");
	all = json_object_get(root, "all");
	list = json_object_get(root, "drained");
	if (!json_is_object(root) || !json_is_integer(v) || json_integer_value(v) != 1) {
		snprintf(why, whylen, "not a version 1 drain state");
		goto out;
	}
	json_object_foreach(root, key, x)
	{
		if (strcmp(key, "v") && strcmp(key, "all") && strcmp(key, "drained")) {
			snprintf(why, whylen, "unknown member '%.40s'", key);
			goto out;
		}
	}
	if ((all && !json_is_boolean(all)) || (list && !json_is_array(list))) {
		snprintf(why, whylen, "\"all\" must be a boolean and \"drained\" an array");
		goto out;
	}
	out->all = json_is_true(all);
	json_array_foreach(list, i, x)
	{
		struct netaddr a;
		if (!json_is_string(x) || netaddr_parse(json_string_value(x), 0, &a) || !a.port) {
			snprintf(why, whylen, "entry %zu is not an ADDRESS:PORT string", i + 1);
			goto out;
		}
		if (drain_state_set(out, &a, true)) {
			snprintf(why, whylen, "more than %u entries", DRAIN_STATE_MAX);
			goto out;
		}
	}
	r = 0;
out:
	json_decref(root);
	if (r)
		memset(out, 0, sizeof(*out));
	return r;
}

char *drain_state_format(const struct drain_state *s, size_t *len)
{
	json_t *root = json_pack("{s:i, s:b, s:[]}", "v", 1, "all", s->all, "drained");
	json_t *list = root ? json_object_get(root, "drained") : NULL;
	char *text = NULL, *line;
	char b[NETADDR_STRLEN];
	size_t n;

	for (unsigned i = 0; list && i < s->n; i++)
		if (json_array_append_new(
		        list, json_string(netaddr_format(&s->vip[i], true, b, sizeof(b)))))
			goto out;
	if (!list)
		goto out;
	text = json_dumps(root, JSON_COMPACT);
	if (!text)
		goto out;
	n = strlen(text);
	line = realloc(text, n + 2);
	if (!line) {
		free(text);
		text = NULL;
		goto out;
	}
	text = line;
	text[n] = '\n';
	text[n + 1] = '\0';
	if (len)
		*len = n + 1;
out:
	json_decref(root);
	return text;
}

int drain_state_load(const char *path, struct drain_state *out, char *why, size_t whylen)
{
	char *buf;
	ssize_t n;
	int fd, r;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		snprintf(why, whylen, "%s", strerror(-r));
		return r;
	}
	buf = malloc(DRAIN_STATE_FILE_MAX);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, buf, DRAIN_STATE_FILE_MAX);
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r)
		snprintf(why, whylen, "%s", strerror(-r));
	else if (n == DRAIN_STATE_FILE_MAX) {
		snprintf(why, whylen, "larger than %u bytes", DRAIN_STATE_FILE_MAX);
		r = -EFBIG;
	} else
		r = drain_state_parse(buf, (size_t)n, out, why, whylen);
	free(buf);
	return r;
}

/* mkdir -p of path's directory. */
static int make_parent(const char *path, char *dir, size_t cap)
{
	snprintf(dir, cap, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return snprintf(dir, cap, "."), 0;
	if (slash == dir)
		return snprintf(dir, cap, "/"), 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int drain_state_save(const char *path, const struct drain_state *s)
{
	char dir[512], tmp[600];
	size_t len = 0;
	char *text;
	int fd, dfd, r = 0;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	r = make_parent(path, dir, sizeof(dir));
	if (r)
		return r;
	text = drain_state_format(s, &len);
	if (!text)
		return -ENOMEM;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		r = -errno;
		free(text);
		return r;
	}
	for (size_t off = 0; off < len && !r;) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno != EINTR)
			r = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	free(text);
	if (!r && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && !r)
		r = -errno;
	if (!r && rename(tmp, path) < 0)
		r = -errno;
	if (r) {
		unlink(tmp);
		return r;
	}
	/* The rename itself is durable only once the directory is. */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

bool drain_state_has(const struct drain_state *s, const struct netaddr *a)
{
	if (s->all)
		return true;
	for (unsigned i = 0; i < s->n; i++)
		if (netaddr_equal(&s->vip[i], a))
			return true;
	return false;
}

int drain_state_set(struct drain_state *s, const struct netaddr *a, bool on)
{
	for (unsigned i = 0; i < s->n; i++) {
		if (!netaddr_equal(&s->vip[i], a))
			continue;
		if (!on)
			s->vip[i] = s->vip[--s->n];
		return 0;
	}
	if (!on)
		return 0;
	if (s->n == DRAIN_STATE_MAX)
		return -ENOSPC;
	s->vip[s->n++] = *a;
	return 0;
}
