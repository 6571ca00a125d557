/*
 * conf_env.c: the one part of the configuration loader that reads the
 * system. Everything a default depends on (CPU count, host name,
 * resolv.conf's nameservers) is read here once into a struct conf_env that
 * the loaders take as input, so conf_load_buffer is a pure function of its
 * text and env.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf_int.h"

char *conf_env_read_file(const char *path, size_t *len_out, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 4096;
	char *buf;

	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		*err = -ENOMEM;
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			char *nb;
			if (cap >= CONF_FILE_MAX) {
				free(buf);
				close(fd);
				*err = -EFBIG;
				return NULL;
			}
			cap *= 2;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				close(fd);
				*err = -ENOMEM;
				return NULL;
			}
			buf = nb;
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*err = -errno;
			free(buf);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	buf[len] = '\0';
	*len_out = len;
	return buf;
}

void conf_env_read(struct conf_env *env, const char *resolv_conf)
{
	size_t len;
	int err, n;
	char *text;

	memset(env, 0, sizeof(*env));
	env->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	/* gethostname may leave a name cut at the buffer without a NUL. */
	if (gethostname(env->hostname, sizeof(env->hostname)) != 0)
		env->hostname[0] = '\0';
	env->hostname[CONF_IDENTITY_MAX] = '\0';
	if (!resolv_conf)
		return;
	snprintf(env->resolv_conf, sizeof(env->resolv_conf), "%s", resolv_conf);
	text = conf_env_read_file(resolv_conf, &len, &err);
	if (!text)
		return;
	n = conf_parse_resolv(text, env->nameservers, CONF_MAX_UPSTREAMS);
	free(text);
	env->n_nameservers = n > 0 ? (unsigned)n : 0;
}
