/* SPDX-License-Identifier: MIT */
/* `ptmon serve`: HTTP through libmicrohttpd, and the checks on every
 * request and connection. */
#include "serve_int.h"

/* ---- HTTP ---------------------------------------------------------------------------------- */

enum MHD_Result serve_reply(struct MHD_Connection *c, unsigned status, const char *type, char *body,
			    size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r)
		return free(body), MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* An error reply, {"error":MSG}, with one more header if @hname. */
static enum MHD_Result error_h(struct MHD_Connection *c, unsigned status, const char *msg,
			       const char *hname, const char *hvalue)
{
	char *body = NULL;
	if (asprintf(&body, "{\"error\":\"%s\"}\n", msg) < 0)
		return MHD_NO;
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r)
		return free(body), MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (hname)
		MHD_add_response_header(r, hname, hvalue);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result serve_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return error_h(c, status, msg, NULL, NULL);
}

/* @h ("name" or "name:port") names this loopback server: one of the
 * loopback names or the listen address; the port, if given, is ours. */
static bool host_name_ok(const char *h, size_t len)
{
	const char *ok[] = {S.host, "127.0.0.1", "localhost", "[::1]"};
	for (size_t i = 0; i < 4; i++) {
		size_t n = strlen(ok[i]);
		if (n > len || strncasecmp(h, ok[i], n))
			continue;
		if (n == len)
			return true;
		char port[8];
		if (h[n] != ':' || len - n - 1 == 0 || len - n - 1 >= sizeof(port))
			continue;
		memcpy(port, h + n + 1, len - n - 1);
		port[len - n - 1] = '\0';
		if (strspn(port, "0123456789") == strlen(port) && (unsigned)atoi(port) == S.port)
			return true;
	}
	return false;
}

/* On loopback, the Host header must name this server: a web page whose
 * name was rebound to 127.0.0.1 (DNS rebinding) sends its own name.  On
 * another address serve is read-only (no --allow-control) and reachable
 * under whatever names the network gives it, so Host is not checked. */
static bool host_ok(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	if (!S.loopback)
		return true;
	return h && host_name_ok(h, strlen(h));
}

/* A browser says who asks: Origin (on every POST and cross-origin fetch)
 * and Sec-Fetch-Site.  Only this server's own origin may ask; a client
 * that is not a browser sends neither. */
static bool origin_ok(struct MHD_Connection *c)
{
	const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return false;
	if (!o)
		return true;
	return h && !strncmp(o, "http://", 7) && !strcmp(o + 7, h);
}

/* The Authorization header carries the token: compared in constant time. */
static bool token_ok(struct MHD_Connection *c)
{
	const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	if (!a || strncmp(a, "Bearer ", 7))
		return false;
	a += 7;
	size_t n = strlen(a);
	unsigned char diff = n != S.token_len;
	for (size_t i = 0; i < S.token_len; i++)
		diff |= (unsigned char)(S.token[i] ^ (i < n ? a[i] : 0));
	return S.token_len > 0 && !diff;
}

/* src/serve_page.html, compiled in (cmake/embed.cmake). */
extern const unsigned char serve_page[];
extern const unsigned long serve_page_size;

/* GET /: the live page.  It only ever asks this server (connect-src
 * 'self'), and may not be framed by another site (clickjacking). */
static enum MHD_Result on_page(struct MHD_Connection *c)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		serve_page_size, (void *)serve_page, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Content-Security-Policy",
				"default-src 'none'; script-src 'unsafe-inline'; "
				"style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; "
				"base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* An action: /api/tasks/ID/kill or /api/tasks/ID/cancel. */
static bool is_action(const char *url)
{
	if (strncmp(url, "/api/tasks/", 11))
		return false;
	const char *slash = strchr(url + 11, '/');
	return slash && (!strcmp(slash, "/kill") || !strcmp(slash, "/cancel"));
}

static bool has_body(struct MHD_Connection *c)
{
	const char *n = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding") ||
	       (n && strspn(n, "0") != strlen(n));
}

static void headers_in(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *i =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	pthread_mutex_lock(&S.lock);
	if (i && i->socket_context)
		((struct hconn *)i->socket_context)->since_ms = 0;
	pthread_mutex_unlock(&S.lock);
}

/* The checks on the headers alone, before anything else: false to go on,
 * else the refusal is queued in *ret. */
static bool refused(struct MHD_Connection *c, const char *url, const char *method,
		    enum MHD_Result *ret)
{
	bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	if (!host_ok(c))
		*ret = serve_error(c, 403, "the Host header does not name this server");
	else if (!origin_ok(c))
		*ret = serve_error(c, 403, "a request from another origin");
	else if (has_body(c))
		*ret = serve_error(c, 413, "no request body is taken");
	else if (is_action(url) && strcmp(method, "POST"))
		*ret = error_h(c, 405, "an action is POST only", "Allow", "POST");
	else if (is_action(url) && !S.control)
		*ret = serve_error(c, 403, "read-only: serve runs without --allow-control");
	else if (is_action(url) && !token_ok(c))
		*ret = error_h(c, 401, "Authorization: Bearer TOKEN (--token-file) needed",
			       "WWW-Authenticate", "Bearer");
	else if (!is_action(url) && !get)
		*ret = error_h(c, 405, "GET only", "Allow", "GET, HEAD");
	else
		return false;
	return true;
}

/* A refusal is decided on the headers alone, in the first call, so that a
 * refused request's body is never read; an accepted request has no body
 * (an action's arguments are in its query) and is answered in the second. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	(void)cls, (void)version, (void)upload;
	enum MHD_Result ret = MHD_YES;
	if (!*con_cls) {
		*con_cls = c;
		headers_in(c);
		refused(c, url, method, &ret);
		return ret;
	}
	if (*upload_size)
		return MHD_NO;
	if (is_action(url) || !strncmp(url, "/api/tasks/", 11))
		return serve_on_task(c, url + 11);
	if (!strcmp(url, "/metrics"))
		return serve_on_metrics(c);
	if (!strcmp(url, "/") || !strcmp(url, "/index.html"))
		return on_page(c);
	size_t len = 0;
	if (!strcmp(url, "/api/tasks")) {
		char *body = serve_tasks_json(&len);
		return body ? serve_reply(c, 200, "application/json", body, len)
			    : serve_error(c, 500, "out of memory");
	}
	return serve_error(c, 404, "not found");
}

/* ---- setup and the loop ---------------------------------------------------------------------- */

int serve_parse_listen(const char *s, struct sockaddr_storage *ret, socklen_t *ret_len)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -EINVAL;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 0 || port > 65535)
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	struct sockaddr_in *v4 = (struct sockaddr_in *)ret;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ret;
	memset(ret, 0, sizeof(*ret));
	size_t hl = strlen(host);
	if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &v6->sin6_addr) != 1)
			return -EINVAL;
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		*ret_len = sizeof(*v6);
		S.loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
		return 0;
	}
	if (inet_pton(AF_INET, host, &v4->sin_addr) != 1)
		return -EINVAL;
	v4->sin_family = AF_INET;
	v4->sin_port = htons((uint16_t)port);
	*ret_len = sizeof(*v4);
	S.loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
	return 0;
}

int64_t serve_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* MHD tells of each connection's accept and close.  It calls CLOSED before
 * it closes the fd, and both run under S.lock here, so serve_cut_slow() never
 * shuts down an fd that is no longer this connection's. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	(void)cls;
	pthread_mutex_lock(&S.lock);
	struct hconn *h = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *i =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (i && (h = calloc(1, sizeof(*h)))) {
			h->fd = i->connect_fd;
			h->since_ms = serve_now_ms();
			h->next = S.hconns;
			if (h->next)
				h->next->prev = h;
			S.hconns = h;
			*socket_context = h;
		}
	} else if (h) {
		if (h->prev)
			h->prev->next = h->next;
		else
			S.hconns = h->next;
		if (h->next)
			h->next->prev = h->prev;
		free(h);
		*socket_context = NULL;
	}
	pthread_mutex_unlock(&S.lock);
}

/* A request answered: the connection's next request has its own time. */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode code)
{
	(void)cls, (void)con_cls, (void)code;
	const union MHD_ConnectionInfo *i =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	pthread_mutex_lock(&S.lock);
	if (i && i->socket_context)
		((struct hconn *)i->socket_context)->since_ms = serve_now_ms();
	pthread_mutex_unlock(&S.lock);
}

/* Cut the connections that took more than HTTP_HEADERS_MS to send a
 * request's headers: MHD's idle timeout never ends a client that sends a
 * byte now and then.  shutdown() wakes MHD, which then closes it. */
void serve_cut_slow(void)
{
	int64_t now = serve_now_ms();
	for (struct hconn *h = S.hconns; h; h = h->next)
		if (h->since_ms && now - h->since_ms > HTTP_HEADERS_MS) {
			shutdown(h->fd, SHUT_RDWR);
			h->since_ms = 0;
			S.cut++;
		}
}

/* As many connections as the fd limit allows, up to HTTP_FDS_WANTED, so
 * that a burst of clients is answered rather than refused at accept. */
static unsigned connection_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < HTTP_FDS_WANTED) {
		rl.rlim_cur = rl.rlim_max < HTTP_FDS_WANTED ? rl.rlim_max : HTTP_FDS_WANTED;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 256)
		return 128;
	return (unsigned)(rl.rlim_cur - 128); /* the rest: task sockets, asks */
}

struct MHD_Daemon *serve_start_http(const struct sockaddr_storage *sa)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
			 MHD_ALLOW_SUSPEND_RESUME;
	if (sa->ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	return MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, sa,
		MHD_OPTION_CONNECTION_LIMIT, connection_limit(), MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
		MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
		NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
}

/* The token of --allow-control: a regular file of ours that no one else
 * may read or write (like ssh's keys), one line of at least TOKEN_MIN
 * bytes.  Returns 0 or the exit status after saying why. */
int serve_read_token(const char *path)
{
	int r;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = serve_say(EXIT_FAILED, "--token-file %s: %s", path, strerror(errno));
		goto out;
	}
	const char *why = !S_ISREG(st.st_mode)     ? "not a regular file"
			  : st.st_uid != geteuid() ? "not owned by the user serve runs as"
			  : st.st_mode & 077       ? "readable or writable by others (chmod 600 it)"
						   : NULL;
	if (why) {
		r = serve_say(EXIT_FAILED, "--token-file %s: %s", path, why);
		goto out;
	}
	ssize_t n = read(fd, S.token, sizeof(S.token));
	if (n < 0) {
		r = serve_say(EXIT_FAILED, "--token-file %s: %s", path, strerror(errno));
		goto out;
	}
	while (n > 0 && (S.token[n - 1] == '\n' || S.token[n - 1] == '\r'))
		n--;
	if (n < TOKEN_MIN || (size_t)n >= sizeof(S.token) || memchr(S.token, '\n', (size_t)n) ||
	    strlen(S.token) < (size_t)n) {
		memset(S.token, 0, sizeof(S.token));
		r = serve_say(EXIT_FAILED, "--token-file %s: one line of %d to %d bytes expected",
			      path, TOKEN_MIN, TOKEN_MAX - 1);
		goto out;
	}
	S.token[n] = '\0';
	S.token_len = (size_t)n;
	r = 0;
out:
	util_close(fd);
	return r;
}
