/* SPDX-License-Identifier: MIT */
/* JSON for arbitrary bytes: strings that are valid UTF-8, and when the
 * bytes are not, base64 of the raw bytes beside them, so nothing is lost.
 * And the same bytes made harmless for a terminal (text_escape). */
#include "output.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Length of the valid UTF-8 sequence at @s (at most @n bytes), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are invalid. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(u + i, n - i);
		if (!l)
			return false;
		i += l;
	}
	return true;
}

struct json_object *json_bytes(const char *s, size_t n)
{
	if (utf8_valid(s, n))
		return json_object_new_string_len(s, (int)n);
	/* Each invalid byte becomes U+FFFD (3 bytes). */
	char *out = malloc(n * 3 + 1);
	if (!out)
		return NULL;
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(u + i, n - i);
		if (l) {
			memcpy(out + o, u + i, l);
			o += l;
			i += l;
		} else {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
		}
	}
	struct json_object *j = json_object_new_string_len(out, (int)o);
	free(out);
	return j;
}

struct json_object *json_base64(const char *s, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1);
	if (!out)
		return NULL;
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0, i = 0;
	for (; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)u[i] << 16 | (uint32_t)u[i + 1] << 8 | u[i + 2];
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = tab[(v >> 6) & 63];
		out[o++] = tab[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)u[i] << 16 | (i + 1 < n ? (uint32_t)u[i + 1] << 8 : 0);
		out[o++] = tab[v >> 18];
		out[o++] = tab[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	struct json_object *j = json_object_new_string_len(out, (int)o);
	free(out);
	return j;
}

void json_add_argv(struct json_object *obj, const char *argv, size_t len, bool truncated)
{
	if (!argv) {
		json_object_object_add(obj, "argv", NULL);
		return;
	}
	struct json_object *arr = json_object_new_array();
	bool raw = false;
	for (size_t i = 0; i < len;) {
		const char *end = memchr(argv + i, '\0', len - i);
		size_t l = end ? (size_t)(end - (argv + i)) : len - i;
		raw |= !utf8_valid(argv + i, l);
		json_object_array_add(arr, json_bytes(argv + i, l));
		i += l + 1;
	}
	json_object_object_add(obj, "argv", arr);
	if (raw) /* lossless: the exact bytes, NUL-separated */
		json_object_object_add(obj, "argv_base64", json_base64(argv, len));
	if (truncated)
		json_object_object_add(obj, "argv_truncated", json_object_new_boolean(1));
}

/* The escape for the character of @l bytes at @u, into @esc; 0 when it is
 * shown as it is. */
static size_t escape_of(const unsigned char *u, size_t l, char esc[8])
{
	if (l == 0) /* not UTF-8: the byte */
		return (size_t)snprintf(esc, 8, "\\x%02x", u[0]);
	if (l == 1 && (u[0] < 0x20 || u[0] == 0x7f))
		return (size_t)snprintf(esc, 8, "\\x%02x", u[0]);
	if (l == 2 && u[0] == 0xC2 && u[1] < 0xA0) /* C1: U+0080..U+009F */
		return (size_t)snprintf(esc, 8, "\\u%04x", (unsigned)(u[1]));
	return 0;
}

size_t text_escape(const char *s, size_t n, char *out, size_t size)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	if (!size)
		return 0;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(u + i, n - i);
		char esc[8];
		size_t e = escape_of(u + i, l, esc);
		const char *put = e ? esc : s + i;
		size_t len = e ? e : l;
		if (o + len >= size) /* whole escapes and characters only */
			break;
		memcpy(out + o, put, len);
		o += len;
		i += l ? l : 1;
	}
	out[o] = '\0';
	return o;
}

char *text_escape_dup(const char *s, size_t n)
{
	/* Each byte becomes at most 4 ("\x1b"), a C1 pair 6 ("\u009b"). */
	char *out = malloc(n * 4 + 1);
	if (out)
		text_escape(s, n, out, n * 4 + 1);
	return out;
}

void rfc3339_ns(uint64_t unix_ns, char *out, size_t size)
{
	time_t sec = (time_t)(unix_ns / 1000000000ull);
	struct tm tm;
	char day[24];
	if (!gmtime_r(&sec, &tm) || !strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm))
		day[0] = '\0';
	snprintf(out, size, "%s.%09uZ", day, (unsigned)(unix_ns % 1000000000ull));
}

void json_add_time(struct json_object *obj, const char *key, uint64_t unix_ns)
{
	char t[40];
	rfc3339_ns(unix_ns, t, sizeof(t));
	json_object_object_add(obj, key, json_object_new_string(t));
}
