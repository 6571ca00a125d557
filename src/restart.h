/*
 * restart.h: in-place restart and binary upgrade, the composition root's
 * third half (beside main.c and ops.c): it alone knows the handover
 * (core/handover.h), the DNS workers and the BGP speaker together.
 *
 * `anycachectl restart` (the same with a new binary at the same path is
 * the upgrade) runs this sequence; nothing is dropped or refused, the router
 * sees no withdrawal:
 *
 *   old (ctl thread)                       successor (main thread, at start)
 *   spawn exe argv, env HANDOVER_ENV=fd
 *   OFFER every listener fd        ---->   adopt matching ones, open the rest
 *                                          (dns workers, BGP, metrics); the
 *                                          control socket is replaced
 *                                  <----   READY
 *   freeze BGP at a message boundary
 *   (no reads, no timers, queue sent)
 *   STATE: each Established session
 *   (fd + bgp_handover.h bytes)    ---->   import the sessions, start threads
 *                                  <----   SERVING
 *   hand over BGP (forget, no Cease),
 *   stop reading the DNS listeners,
 *   answer what is in flight (bounded by
 *   RESTART_RETIRE_MS), exit 0
 *
 * Until SERVING both processes read the same sockets: whoever takes a
 * datagram or a connection answers it; after it only the successor reads
 * and the kernel queues hold what arrives in between. BGP never has two
 * speakers: the old one is frozen before it sends the state and forgets the
 * sessions after SERVING. The successor holds its imported routes as they
 * are until its own health monitor has judged every VIP (main.c).
 *
 * Failure: a successor that dies, answers wrongly or not within
 * RESTART_STEP_MS per step is killed (SIGKILL, reaped); the BGP sessions
 * thaw and resume (what arrived meanwhile is handled then), the listeners
 * were never stopped: the old process goes on as if nothing happened and
 * the command fails with the reason.
 *
 * Threads: restart_start and everything after it on the control loop; the
 * successor's functions on its main thread before any thread starts.
 */
#ifndef ANYCACHE_RESTART_H
#define ANYCACHE_RESTART_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/conf.h"

struct loop;
struct dns_server;
struct bgp_speaker;
struct restart;

#define RESTART_STEP_MS   8000u /* for the successor to be READY, or SERVING */
#define RESTART_FREEZE_MS 1000u /* for the BGP sessions to send what they queued */
/* The forwarder's whole-query budget (2.5 s) and a margin: then the old one exits. */
#define RESTART_RETIRE_MS 3000u

struct restart_conf {
	struct loop *ctl;
	struct bgp_speaker *bgp; /* NULL without BGP */
	const struct conf *conf;
	struct loop *const *worker_loops;
	struct dns_server *const *worker_dns;
	unsigned n_workers;
	const char *exe;                             /* resolved at start (restart_exe) */
	char *const *argv;                           /* the process's own */
	void (*retired)(void *arg, pid_t successor); /* ctl thread: exit now */
	/* Ctl thread, just before the successor is spawned (NULL: none): the
	 * composition root saves the cache there for the successor to load. */
	void (*before_spawn)(void *arg);
	void *arg;
};

typedef void (*restart_done_fn)(void *arg, int err, pid_t pid, const char *why);

int restart_new(const struct restart_conf *c, struct restart **out);
/* Kills a successor that has not confirmed. */
void restart_free(struct restart *r);

/* Control loop: begins a restart; done(arg, 0, pid, NULL) once the successor
 * serves, or done(arg, -errno, 0, reason). -EBUSY when one is running. */
int restart_start(struct restart *r, restart_done_fn done, void *arg);

/* The binary's path at start: /proc/self/exe, else argv0 resolved. */
int restart_exe(const char *argv0, char *out, size_t size);

/* ---- the successor (main thread, before any thread) ---- */

/*
 * When the environment names a handover channel: receives the OFFER into
 * the registry (handover_take finds the sockets) and marks the process a
 * successor. Returns the channel fd, -ENOENT when this is a plain start,
 * or another -errno (the successor then exits: the old one resumes).
 */
int restart_inherit(char *why, size_t whylen);
/*
 * READY, then the STATE: every Established session the old one handed over
 * is imported into the speaker (sp may be NULL: the sessions' fds are closed
 * by handover_release_unused). Returns how many were imported, or -errno.
 */
int restart_adopt(int sock, struct bgp_speaker *sp, const struct conf_bgp *bgp, char *why,
                  size_t whylen);
/* Everything runs: SERVING, and the channel is closed. */
int restart_serving(int sock);

#endif
