/* SPDX-License-Identifier: MIT */
/* `ptmon serve`: GET /metrics. */
#include "serve_int.h"

/* ---- /metrics ---------------------------------------------------------------------------- */

static void sample(FILE *f, const char *metric, const char *name, const char *extra, uint64_t v)
{
	char esc[512];
	expo_label_value(name, esc, sizeof(esc));
	fprintf(f, "%s{name=\"%s\"%s} %" PRIu64 "\n", metric, esc, extra ? extra : "", v);
}

static void metrics_counts(FILE *f, bool om)
{
	struct name_stats *n;
	expo_family(f, "ptmon_tasks_started", "counter", "Tasks serve began to follow.", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_tasks_started_total", n->name, NULL, n->started);
	expo_family(f, "ptmon_tasks_finished", "counter", "Followed tasks that ended (done).", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_tasks_finished_total", n->name, NULL, n->finished);
	expo_family(f, "ptmon_tasks_vanished", "counter",
		    "Followed tasks whose connection ended without a done event.", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_tasks_vanished_total", n->name, NULL, n->vanished);
	expo_family(f, "ptmon_processes", "counter",
		    "Processes of the tasks' trees, roots included.", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_processes_total", n->name, NULL, n->c.processes);
	expo_family(f, "ptmon_exits", "counter", "Processes that ended, by outcome.", om);
	for (n = S.names; n; n = n->next)
		for (int k = 0; k < OUTCOMES; k++) {
			char extra[64];
			snprintf(extra, sizeof(extra), ",outcome=\"%s\"", outcome_names[k]);
			sample(f, "ptmon_exits_total", n->name, extra, n->c.exits[k]);
		}
	expo_family(f, "ptmon_cpu_seconds", "counter", "CPU time of ended processes.", om);
	for (n = S.names; n; n = n->next) {
		char esc[512];
		expo_label_value(n->name, esc, sizeof(esc));
		fprintf(f, "ptmon_cpu_seconds_total{name=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n", esc,
			n->c.cpu_us / 1000000, n->c.cpu_us % 1000000);
	}
	expo_family(f, "ptmon_peak_rss_bytes", "counter",
		    "Peak resident memory of ended processes, summed.", om);
	for (n = S.names; n; n = n->next)
		sample(f, "ptmon_peak_rss_bytes_total", n->name, NULL, n->c.rss_kb * 1024);
	expo_family(f, "ptmon_events_lost", "counter",
		    "Events lost: by the kernel (as ptmon counts them) or by serve's follow "
		    "connection.",
		    om);
	for (n = S.names; n; n = n->next) {
		sample(f, "ptmon_events_lost_total", n->name, ",by=\"kernel\"", n->c.lost_kernel);
		sample(f, "ptmon_events_lost_total", n->name, ",by=\"follower\"", n->lost_follower);
	}
}

static void metrics_gauges(FILE *f, bool om)
{
	struct name_stats *n;
	expo_family(f, "ptmon_tasks_alive", "gauge", "Tasks followed now.", om);
	for (n = S.names; n; n = n->next) {
		uint64_t k = 0;
		for (struct stask *t = S.tasks; t; t = t->next)
			k += t->ns == n && t->phase == 2;
		sample(f, "ptmon_tasks_alive", n->name, NULL, k);
	}
	expo_family(f, "ptmon_processes_alive", "gauge", "Processes of followed tasks alive now.",
		    om);
	for (n = S.names; n; n = n->next) {
		uint64_t k = 0;
		for (struct stask *t = S.tasks; t; t = t->next)
			k += t->ns == n && t->phase == 2 ? (uint64_t)t->alive : 0;
		sample(f, "ptmon_processes_alive", n->name, NULL, k);
	}
	expo_family(f, "ptmon_serve_tasks_missed", "counter",
		    "Control sockets that appeared and were gone before serve could connect.", om);
	fprintf(f, "ptmon_serve_tasks_missed_total %" PRIu64 "\n", S.missed);
	expo_family(f, "ptmon_serve_events", "counter", "Event lines serve followed, all tasks.",
		    om);
	fprintf(f, "ptmon_serve_events_total %" PRIu64 "\n", S.events);
	expo_family(f, "ptmon_serve_connections_cut", "counter",
		    "HTTP connections cut: their request headers took more than 5 s.", om);
	fprintf(f, "ptmon_serve_connections_cut_total %" PRIu64 "\n", S.cut);
}

static char *metrics_text(bool om, size_t *ret_len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, ret_len);
	if (!f)
		return NULL;
	pthread_mutex_lock(&S.lock);
	metrics_counts(f, om);
	metrics_gauges(f, om);
	pthread_mutex_unlock(&S.lock);
	expo_end(f, om);
	return fclose(f) == 0 ? text : (free(text), NULL);
}

enum MHD_Result serve_on_metrics(struct MHD_Connection *c)
{
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
	bool om = accept && strstr(accept, "application/openmetrics-text");
	size_t len = 0;
	char *text = metrics_text(om, &len);
	if (!text)
		return serve_error(c, 500, "out of memory");
	return serve_reply(c, 200,
			   om ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
			      : "text/plain; version=0.0.4; charset=utf-8",
			   text, len);
}
