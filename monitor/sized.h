/* SPDX-License-Identifier: MIT */
/*
 * The caller's sized structs (ptmon.h, "Structs that grow"): copying one in
 * from a caller built against another version of ptmon.h, and filling one
 * out for it, touching only the bytes within its `size`.
 */
#ifndef PTMON_SIZED_H
#define PTMON_SIZED_H

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* No struct of ptmon.h will ever be this large: a size past it is not a
 * size (a caller that never set the field), and must not make the library
 * scan or clear that much of the caller's memory. */
#define SIZED_MAX 4096

/* Copy the caller's @src (its own size in its first field) into @dst, which
 * is @dst_size bytes: fields past the caller's size stay as @dst has them
 * (zero, which every field added later means as "as before").  A caller
 * newer than the library may pass a larger struct, but what it set in the
 * fields this library does not know must be zero: otherwise it asks for
 * something this library cannot do, and is told so (-E2BIG, as clone3(2)
 * and openat2(2) answer), as is a size past SIZED_MAX.  -EINVAL: a size
 * below the first published layout, @min_size. */
static inline int sized_copy_in(void *dst, size_t dst_size, const void *src, size_t min_size)
{
	size_t size;
	memcpy(&size, src, sizeof(size));
	if (size < min_size)
		return -EINVAL;
	if (size > SIZED_MAX)
		return -E2BIG;
	for (size_t i = dst_size; i < size; i++)
		if (((const unsigned char *)src)[i])
			return -E2BIG;
	memcpy(dst, src, size < dst_size ? size : dst_size);
	memcpy(dst, &dst_size, sizeof(dst_size));
	return 0;
}

/* Fill the caller's @dst (its own size in its first field) from @src, which
 * is @src_size bytes with its size field at the start: only the caller's
 * size is written, its size field is left as it is, and fields this library
 * does not know (a caller newer than it) read as zero.  -EINVAL: a size
 * below the first published layout, @min_size, or past SIZED_MAX. */
static inline int sized_copy_out(void *dst, const void *src, size_t src_size, size_t min_size)
{
	size_t size;
	memcpy(&size, dst, sizeof(size));
	if (size < min_size || size > SIZED_MAX)
		return -EINVAL;
	size_t n = size < src_size ? size : src_size;
	memcpy((char *)dst + sizeof(size), (const char *)src + sizeof(size), n - sizeof(size));
	if (size > src_size)
		memset((char *)dst + src_size, 0, size - src_size);
	return 0;
}

#endif
