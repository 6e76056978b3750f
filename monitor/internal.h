/* SPDX-License-Identifier: MIT */
/*
 * Every private header of libptmon, for the unit tests that reach into
 * the layers (tests/test_track.c and others).  The library's own files
 * include only the layer headers they use: see docs/internals.md.
 */
#ifndef PTMON_INTERNAL_H
#define PTMON_INTERNAL_H

#include "acct.h"
#include "cgroup.h"
#include "loop.h"
#include "monitor.h"
#include "procfs.h"
#include "sink.h"
#include "stream.h"
#include "sys.h"
#include "task.h"
#include "track.h"
#include "tree.h"

#endif
