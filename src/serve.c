/* SPDX-License-Identifier: MIT */
/*
 * `ptmon serve`.  The main thread owns an epoll loop: the inotify watch of
 * the control directory (a new socket is connected to at once, so that a
 * task of a few milliseconds is still followed), a signalfd, and one
 * follow connection per task.  libmicrohttpd answers HTTP in its own
 * threads; both sides share the state under one mutex.
 *
 * Exactness: counters are per task name and only grow.  While a task runs
 * they count the events serve saw; at its `done` event each is raised to
 * the task's own totals (docs/schema.md: processes, exits, ended CPU and
 * peak memory, events lost), so a followed task's figures are exact once
 * it is done even when serve connected late or lost events.
 */
#include "serve_int.h"

struct serve_state S = {.lock = PTHREAD_MUTEX_INITIALIZER,
			.epfd = -1,
			.ino = -1,
			.inotify_kind = W_INOTIFY,
			.signal_kind = W_SIGNAL};

int serve_say(int status, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char *safe = text_escape_dup(line, strlen(line));
	fprintf(stderr, "ptmon: %s\n", safe ? safe : line);
	free(safe);
	return status;
}

static int watch(int fd, void *ptr)
{
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = ptr};
	return epoll_ctl(S.epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
}

static int setup_watch(int *ret_ino, int *ret_sig)
{
	const char *why = NULL;
	int r = control_default_dir(S.dir, sizeof(S.dir));
	if (r == 0)
		r = control_prepare_dir(S.dir, &why);
	if (r < 0)
		return serve_say(-1, "control directory '%s': %s", S.dir, why ? why : strerror(-r));
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	S.epfd = epoll_create1(EPOLL_CLOEXEC);
	*ret_sig = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	*ret_ino = S.ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (S.epfd < 0 || *ret_sig < 0 || *ret_ino < 0 ||
	    !serve_dir_add(D_TASKS, S.dir, geteuid(), -1))
		return serve_say(-1, "watching %s: %s", S.dir, strerror(errno));
	if (watch(*ret_ino, &S.inotify_kind) < 0 || watch(*ret_sig, &S.signal_kind) < 0)
		return serve_say(-1, "epoll: %s", strerror(errno));
	return 0;
}

static void loop(int ino)
{
	int64_t last_ping = serve_now_ms();
	for (;;) {
		struct epoll_event ev[32];
		/* Each second: the slow connections' check. */
		int n = epoll_wait(S.epfd, ev, 32, 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		pthread_mutex_lock(&S.lock);
		serve_cut_slow();
		if (serve_now_ms() - last_ping >= SSE_PING_MS) {
			serve_sse_ping();
			last_ping = serve_now_ms();
		}
		for (int i = 0; i < n; i++) {
			enum watch_kind *k = ev[i].data.ptr;
			if (*k == W_SIGNAL) {
				pthread_mutex_unlock(&S.lock);
				return;
			}
			if (*k == W_INOTIFY)
				serve_inotify_read(ino);
			else if (!serve_task_read((struct stask *)k))
				serve_task_free(
					(struct stask *)k); /* only this batch's own entry */
		}
		pthread_mutex_unlock(&S.lock);
	}
}

static int usage(void)
{
	return serve_say(EXIT_FAILED, "usage: ptmon serve [--listen ADDR:PORT] "
				      "[--allow-control --token-file PATH] [-v]");
}

int serve_main(int argc, char **argv)
{
	const char *listen = SERVE_DEFAULT_LISTEN, *token = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--listen") && i + 1 < argc)
			listen = argv[++i];
		else if (!strcmp(argv[i], "--token-file") && i + 1 < argc)
			token = argv[++i];
		else if (!strcmp(argv[i], "--allow-control"))
			S.control = true;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			S.verbose = true;
		else
			return usage();
	}
	struct sockaddr_storage sa;
	socklen_t salen;
	if (serve_parse_listen(listen, &sa, &salen) < 0)
		return serve_say(EXIT_FAILED,
				 "--listen: '%s' is not ADDR:PORT (127.0.0.1:9464, [::1]:9464)",
				 listen);
	snprintf(S.host, sizeof(S.host), "%.*s", (int)(strrchr(listen, ':') - listen), listen);
	if (S.control != !!token)
		return serve_say(EXIT_FAILED, "--allow-control and --token-file go together");
	if (S.control && !S.loopback)
		return serve_say(EXIT_FAILED,
				 "--allow-control: only on a loopback --listen address (the "
				 "token would cross the network in clear)");
	if (token && serve_read_token(token))
		return EXIT_FAILED;
	int ino = -1, sig = -1, r = EXIT_FAILED;
	struct MHD_Daemon *d = NULL;
	/* Event ids start from it: a Last-Event-ID of another serve (restarted)
	 * is never taken for one of ours. */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(S.epoch, sizeof(S.epoch), "%" PRIx64,
		 (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
	/* Root may read every user's tasks, and an admin's dashboard wants them. */
	S.all_users = geteuid() == 0;
	if (setup_watch(&ino, &sig) < 0)
		goto out;
	d = serve_start_http(&sa);
	if (!d) {
		r = serve_say(EXIT_FAILED, "cannot listen on %s", listen);
		goto out;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	S.port = info ? info->port : 0;
	/* The first scan before the line that says serve is ready. */
	pthread_mutex_lock(&S.lock);
	serve_scan_all();
	pthread_mutex_unlock(&S.lock);
	serve_say(0, "serving http://%s:%u/metrics for the tasks in %s%s%s", S.host, S.port, S.dir,
		  S.all_users ? " and every user's" : "",
		  S.control ? "; control allowed with the token" : "");
	loop(ino);
	r = 0;
out:
	/* Streams end with their tasks' streams; MHD closes them. */
	pthread_mutex_lock(&S.lock);
	while (S.tasks)
		serve_task_free(S.tasks);
	pthread_mutex_unlock(&S.lock);
	if (d)
		MHD_stop_daemon(d);
	for (size_t i = 0; i < REPORTS_KEPT; i++)
		free(S.reports[i].json);
	for (size_t i = 0; i < FINISHED_KEPT; i++)
		free(S.finished[i]);
	while (S.dirs)
		serve_dir_free(S.dirs);
	ino = util_close(ino);
	sig = util_close(sig);
	S.epfd = util_close(S.epfd);
	return r;
}
