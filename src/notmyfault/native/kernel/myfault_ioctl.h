/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The control interface of myfault.ko: one ioctl on /dev/myfault, the way
 * NotMyfault.exe drives myfault.sys through DeviceIoControl in the seed.
 * Shared by the module, the guest tool myfaultctl and (as numbers) by
 * notmyfault.kernel in Python; a test checks that the three agree.
 */
#ifndef MYFAULT_IOCTL_H
#define MYFAULT_IOCTL_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/ioctl.h>
#else
#include <stdint.h>
#include <sys/ioctl.h>
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

#define MYFAULT_OP_CRASH 1      /* kind: MYFAULT_CRASH_*; arg: panic code */
#define MYFAULT_OP_HANG 2       /* kind: MYFAULT_HANG_* */
#define MYFAULT_OP_LEAK 3       /* kind: MYFAULT_POOL_*; arg: bytes/s; limit; block; tag; flags */
#define MYFAULT_OP_STATUS 4     /* fills leaked_bytes and leaked_blocks */
#define MYFAULT_OP_FREE 5       /* frees every leaked block, persistent ones too */

#define MYFAULT_CRASH_HIGH_IRQL 1
#define MYFAULT_CRASH_BUFFER_OVERFLOW 2
#define MYFAULT_CRASH_CODE_OVERWRITE 3
#define MYFAULT_CRASH_STACK_TRASH 4
#define MYFAULT_CRASH_NULL_DEREF 5
#define MYFAULT_CRASH_STACK_OVERFLOW 6
#define MYFAULT_CRASH_BUG 7
#define MYFAULT_CRASH_DOUBLE_FREE 8
#define MYFAULT_CRASH_PANIC 9

#define MYFAULT_HANG_IRP 1
#define MYFAULT_HANG_DPC 2
#define MYFAULT_HANG_DEADLOCK 3

#define MYFAULT_POOL_NONPAGED 1 /* slab objects in a cache named after the tag */
#define MYFAULT_POOL_PAGED 2    /* vmalloc blocks */

#define MYFAULT_PERSIST 1       /* keep the blocks when the module is unloaded (it then refuses) */

#define MYFAULT_TAG_LEN 16

struct myfault_request {
	__u32 op;
	__u32 kind;
	__u64 arg;
	__u64 limit;
	__u64 block;
	__u32 flags;
	__u32 reserved;
	char tag[MYFAULT_TAG_LEN];
	__u64 leaked_bytes;     /* out */
	__u64 leaked_blocks;    /* out */
};

#define MYFAULT_IOCTL _IOWR('M', 1, struct myfault_request)

#endif
