// SPDX-License-Identifier: GPL-2.0
/*
 * myfaultctl: the guest side of `notmyfault lab`, a tiny driver of /dev/myfault
 * for a machine without Python.  The host turns names into numbers:
 *
 *   myfaultctl OP KIND [ARG LIMIT BLOCK FLAGS TAG]
 *
 * and this sends one MYFAULT_IOCTL, then prints "ok BYTES BLOCKS" or the error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "myfault_ioctl.h"

int main(int argc, char **argv)
{
	struct myfault_request r;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: myfaultctl OP KIND [ARG LIMIT BLOCK FLAGS TAG]\n");
		return 2;
	}
	memset(&r, 0, sizeof(r));
	r.op = (__u32)strtoul(argv[1], NULL, 0);
	r.kind = (__u32)strtoul(argv[2], NULL, 0);
	if (argc > 3)
		r.arg = strtoull(argv[3], NULL, 0);
	if (argc > 4)
		r.limit = strtoull(argv[4], NULL, 0);
	if (argc > 5)
		r.block = strtoull(argv[5], NULL, 0);
	if (argc > 6)
		r.flags = (__u32)strtoul(argv[6], NULL, 0);
	if (argc > 7)
		strncpy(r.tag, argv[7], MYFAULT_TAG_LEN - 1);
	fd = open("/dev/myfault", O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "myfaultctl: /dev/myfault: %s (is myfault.ko loaded?)\n", strerror(errno));
		return 1;
	}
	if (ioctl(fd, MYFAULT_IOCTL, &r) < 0) {
		fprintf(stderr, "myfaultctl: ioctl: %s\n", strerror(errno));
		return 1;
	}
	printf("ok %llu %llu\n", (unsigned long long)r.leaked_bytes, (unsigned long long)r.leaked_blocks);
	return 0;
}
