/*
 * ares_glue.h: drive a c-ares 1.18 channel from a struct loop.
 *
 * c-ares tells us which sockets to watch through ARES_OPT_SOCK_STATE_CB; each
 * becomes a one-shot poll on the loop, re-armed after each event, whose readiness is fed back with
 * ares_process_fd(). Query timeouts run from one loop timer armed from
 * ares_timeout(), which walks every outstanding query (PLATFORM.md), so it is
 * recomputed at most once per loop turn, and only after sends or processing,
 * never on idle turns. No c-ares thread, no blocking call.
 *
 * THREADS: the glue belongs to its loop; call everything (ares_send on the
 * channel included) from that loop's thread, or before loop_run.
 * OWNERSHIP: the glue owns the channel; ares_glue_free() destroys it (pending
 * queries get ARES_EDESTRUCTION callbacks) and must precede loop_free().
 * Call loop_global_init() once before ares_glue_new().
 */
#ifndef ANYCACHE_CORE_ARES_GLUE_H
#define ANYCACHE_CORE_ARES_GLUE_H

#include <ares.h>

struct loop;
struct ares_glue;

/* `opts`/`optmask` as for ares_init_options (may be NULL/0); the glue adds
 * ARES_OPT_SOCK_STATE_CB, so the caller must not set it. 0 or -errno
 * (-EINVAL for a caller SOCK_STATE_CB, -ENOMEM, -EIO for other c-ares errors). */
int ares_glue_new(struct loop *l, const struct ares_options *opts, int optmask,
                  struct ares_glue **out);
ares_channel ares_glue_channel(struct ares_glue *g);
/* Call after ares_send()/ares_query(): schedules the timeout timer to be
 * recomputed at the start of the next turn (coalesced). */
void ares_glue_kick(struct ares_glue *g);
void ares_glue_free(struct ares_glue *g);

#endif
