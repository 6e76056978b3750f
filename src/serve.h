/* SPDX-License-Identifier: MIT */
/*
 * `ptmon serve`: one HTTP endpoint for every task of the host that this
 * user may see.  It follows each task's event stream over its control
 * socket (docs/control.md) and serves /metrics (Prometheus text 0.0.4 or
 * OpenMetrics 1.0) with counters over serve's whole life, and a read-only
 * JSON API.  README "ptmon serve" says what is exact and what is not.
 */
#ifndef PTMON_SERVE_H
#define PTMON_SERVE_H

#define SERVE_DEFAULT_LISTEN "127.0.0.1:9464"

/* argv[0] is "serve".  Returns the exit status: 0 after SIGINT/SIGTERM,
 * 125 on bad usage or when it cannot listen or watch. */
int serve_main(int argc, char **argv);

#endif
