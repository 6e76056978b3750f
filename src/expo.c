/* SPDX-License-Identifier: MIT */
#include "expo.h"
#include "output.h"

#include <string.h>

void expo_family(FILE *f, const char *base, const char *type, const char *help, bool om)
{
	const char *suffix = !om && strcmp(type, "counter") == 0 ? "_total" : "";
	fprintf(f, "# HELP %s%s %s\n# TYPE %s%s %s\n", base, suffix, help, base, suffix, type);
}

/* The length of the UTF-8 character at @s (1..4), 0 when it is not one. */
static size_t utf8_char(const char *s, size_t n)
{
	for (size_t len = 1; len <= 4 && len <= n; len++)
		if (utf8_valid(s, len))
			return len;
	return 0;
}

void expo_label_value(const char *s, char *out, size_t size)
{
	size_t o = 0, n = strlen(s);
	while (*s && o + 4 < size) {
		size_t c = utf8_char(s, n);
		if (*s == '\\' || *s == '"' || *s == '\n') {
			out[o++] = '\\';
			out[o++] = *s == '\n' ? 'n' : *s;
		} else if (c) {
			memcpy(out + o, s, c);
			o += c;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
		}
		s += c ? c : 1;
		n -= c ? c : 1;
	}
	out[o] = '\0';
}

void expo_end(FILE *f, bool om)
{
	if (om)
		fputs("# EOF\n", f);
}
