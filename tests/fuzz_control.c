/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the control socket's request parser: any bytes, as
 * one request line, must give either a request whose fields are in range or
 * an error with a code and a message, never a crash, a leak or a read past
 * the buffer.  Build: CC=clang cmake -DPTMON_FUZZ=ON; run:
 *   build-fuzz/tests/fuzz_control -max_total_time=60
 */
#include <assert.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so that ASan sees any read past the end. */
	char *line = malloc(size ? size : 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	struct control_request r;
	struct control_error e = {0};
	int ret = control_parse_request(line, size, &r, &e);
	if (ret == 0) {
		assert(r.cmd <= CONTROL_METRICS);
		if (r.cmd == CONTROL_KILL) {
			assert(r.pid > 1);
			assert(r.signal >= 0 && r.signal <= SIGRTMAX);
		}
	} else {
		assert(ret == -22);
		assert(e.code && e.code[0]);
		assert(strlen(e.message) < sizeof(e.message));
	}
	free(line);
	return 0;
}
