// SPDX-License-Identifier: GPL-2.0
/*
 * myfault.ko: the kernel half of notmyfault, the Linux analog of myfault.sys.
 *
 * User space opens /dev/myfault and sends one ioctl (myfault_ioctl.h) to
 * crash the kernel in a chosen way, hang it, or leak kernel memory at a rate
 * under a tag.  Every fault is committed by a function of this module, so that
 * the vmcore blames myfault.
 *
 * Leaked blocks are tracked: unloading the module frees them, unless they were
 * leaked with MYFAULT_PERSIST, in which case the module holds a reference to
 * itself (rmmod says it is in use) until MYFAULT_OP_FREE releases them.
 */
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/fs.h>
#include <linux/kthread.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/stop_machine.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>

#include "myfault_ioctl.h"

#define LEAK_TICK_MS 100
#define MAX_TAGS 8

/* The header at the start of every leaked block (as a pool header carries its tag). */
struct leak_block {
	struct list_head link;
	char tag[MYFAULT_TAG_LEN];
	u64 seq;
	u64 size;
	u32 pool;
};

struct tag_cache {
	char name[MYFAULT_TAG_LEN];
	size_t size;
	struct kmem_cache *cache;
};

static DEFINE_MUTEX(leak_lock);
static LIST_HEAD(leaked);
static u64 leaked_bytes, leaked_blocks, leak_seq;
static bool pinned;
static struct tag_cache tag_caches[MAX_TAGS];

static DECLARE_COMPLETION(never_completes);
static DEFINE_MUTEX(deadlock_a);
static DEFINE_MUTEX(deadlock_b);

/* A constructor keeps a tag's cache out of SLUB's merging, so the cache keeps the tag's name. */
static void leak_ctor(void *object)
{
	memset(object, 0, sizeof(struct leak_block));
}

static struct kmem_cache *cache_for(const char *tag, size_t size)
{
	int i;

	for (i = 0; i < MAX_TAGS; i++) {
		struct tag_cache *t = &tag_caches[i];

		if (t->cache && !strcmp(t->name, tag))
			return t->size == size ? t->cache : ERR_PTR(-EEXIST);
		if (!t->cache) {
			strscpy(t->name, tag, sizeof(t->name));
			t->size = size;
			t->cache = kmem_cache_create(t->name, size, 0, 0, leak_ctor);
			return t->cache ? t->cache : ERR_PTR(-ENOMEM);
		}
	}
	return ERR_PTR(-ENOSPC);
}

noinline int myfault_leak_one(u32 pool, const char *tag, size_t size)
{
	struct leak_block *b;
	struct kmem_cache *cache = NULL;

	if (pool == MYFAULT_POOL_NONPAGED) {
		cache = cache_for(tag, size);
		if (IS_ERR(cache))
			return PTR_ERR(cache);
		b = kmem_cache_alloc(cache, GFP_KERNEL | __GFP_NOWARN);
	} else {
		b = vmalloc(size);
	}
	if (!b)
		return -ENOMEM;
	strscpy(b->tag, tag, sizeof(b->tag));
	b->seq = ++leak_seq;
	b->size = size;
	b->pool = pool;
	list_add_tail(&b->link, &leaked);
	leaked_bytes += size;
	leaked_blocks++;
	return 0;
}

static void free_block(struct leak_block *b)
{
	int i;

	list_del(&b->link);
	leaked_bytes -= b->size;
	leaked_blocks--;
	if (b->pool == MYFAULT_POOL_PAGED) {
		vfree(b);
		return;
	}
	for (i = 0; i < MAX_TAGS; i++) {
		if (tag_caches[i].cache && !strcmp(tag_caches[i].name, b->tag)) {
			kmem_cache_free(tag_caches[i].cache, b);
			return;
		}
	}
}

static void free_all(void)
{
	struct leak_block *b, *n;
	int i;

	mutex_lock(&leak_lock);
	list_for_each_entry_safe(b, n, &leaked, link)
		free_block(b);
	for (i = 0; i < MAX_TAGS; i++) {
		if (tag_caches[i].cache)
			kmem_cache_destroy(tag_caches[i].cache);
		tag_caches[i].cache = NULL;
	}
	if (pinned)
		module_put(THIS_MODULE);
	pinned = false;
	mutex_unlock(&leak_lock);
}

/*
 * Leak `limit` bytes in blocks of `block` bytes at `rate` bytes per second,
 * a tick at a time; a signal (Ctrl-C) stops it early.  The caller waits.
 */
noinline long myfault_leak(struct myfault_request *r)
{
	u64 done = 0, size = r->block, per_tick, due;
	unsigned long start = jiffies;
	long err = 0;

	if (r->kind != MYFAULT_POOL_NONPAGED && r->kind != MYFAULT_POOL_PAGED)
		return -EINVAL;
	if (size < sizeof(struct leak_block) || size > (64ULL << 20) || !r->arg || !r->limit || !r->tag[0])
		return -EINVAL;
	if (r->kind == MYFAULT_POOL_NONPAGED && size > KMALLOC_MAX_CACHE_SIZE)
		return -E2BIG;
	per_tick = max_t(u64, div_u64(r->arg * LEAK_TICK_MS, 1000), size);
	for (;;) {
		due = div_u64(r->arg * jiffies_to_msecs(jiffies - start), 1000) + per_tick;
		mutex_lock(&leak_lock);
		while (!err && done < r->limit && done < due) {
			err = myfault_leak_one(r->kind, r->tag, size);
			if (!err)
				done += size;
		}
		if (done && (r->flags & MYFAULT_PERSIST) && !pinned) {
			__module_get(THIS_MODULE);
			pinned = true;
		}
		mutex_unlock(&leak_lock);
		if (err || done >= r->limit)
			break;
		if (msleep_interruptible(LEAK_TICK_MS) || fatal_signal_pending(current) || signal_pending(current)) {
			err = -EINTR;
			break;
		}
	}
	pr_info("myfault: leaked %llu bytes in %s pool with tag %s (error %ld)\n", done,
		r->kind == MYFAULT_POOL_NONPAGED ? "nonpaged" : "paged", r->tag, err);
	return err;
}

noinline void myfault_high_irql(void)
{
	u32 *p = vmalloc(PAGE_SIZE);

	if (!p)
		return;
	p[0] = 0x6b61654c; /* "Leak" */
	vfree(p);
	vm_unmap_aliases(); /* no stale TLB entry keeps the freed page readable */
	OPTIMIZER_HIDE_VAR(p);
	local_irq_disable();
	pr_info("myfault: reading freed memory at %px with interrupts off\n", p);
	READ_ONCE(p[0]);
	local_irq_enable();
}

noinline void myfault_buffer_overflow(void)
{
	/* a private cache with red zones: SLUB finds the overrun when the object is freed */
	struct kmem_cache *c = kmem_cache_create("myfault_overflow", 64, 0,
						 SLAB_RED_ZONE | SLAB_CONSISTENCY_CHECKS | SLAB_STORE_USER, NULL);
	volatile u8 *p;
	size_t i, n = 64 + 16;

	if (!c)
		return;
	p = kmem_cache_alloc(c, GFP_KERNEL);
	if (!p)
		return;
	OPTIMIZER_HIDE_VAR(n);
	for (i = 0; i < n; i++)
		p[i] = 0x41;
	kmem_cache_free(c, (void *)p);
}

noinline void myfault_double_free(void)
{
	void *p = kmalloc(64, GFP_KERNEL);

	kfree(p);
	OPTIMIZER_HIDE_VAR(p);
	kfree(p);
}

noinline int myfault_code_target(int x)
{
	return x + 1;
}

noinline void myfault_code_overwrite(void)
{
	volatile u8 *text = (volatile u8 *)myfault_code_target;

	OPTIMIZER_HIDE_VAR(text);
	*text = 0xcc;
}

noinline void myfault_stack_trash(void)
{
	char buf[16];
	volatile char *p = buf;
	size_t i, n = 64;

	OPTIMIZER_HIDE_VAR(n);
	for (i = 0; i < n; i++)
		p[i] = 0x41;
}

noinline void myfault_null_deref(void)
{
	volatile int *p = NULL;

	OPTIMIZER_HIDE_VAR(p);
	(void)*p;
}

static int recurse_limit;

noinline int myfault_stack_overflow(int depth)
{
	volatile char pad[256];

	pad[0] = (char)depth;
	if (recurse_limit && depth > recurse_limit)
		return 0;
	return myfault_stack_overflow(depth + 1) + pad[0];
}

noinline void myfault_bug(void)
{
	BUG();
}

noinline void myfault_panic(u64 code)
{
	panic("myfault: bug check %#llx", code);
}

noinline void myfault_hang_irp(void)
{
	/* a request that never completes: the caller sleeps uninterruptibly for good */
	wait_for_completion(&never_completes);
}

noinline int myfault_hang_dpc(void *unused)
{
	/* stop_machine runs this on every CPU with interrupts off: nothing else runs again */
	local_irq_disable();
	for (;;)
		cpu_relax();
	return 0;
}

noinline int myfault_deadlock_thread(void *first)
{
	struct mutex *a = first, *b = first == &deadlock_a ? &deadlock_b : &deadlock_a;

	mutex_lock(a);
	msleep(200);
	mutex_lock(b);
	mutex_unlock(b);
	mutex_unlock(a);
	return 0;
}

static long myfault_crash(struct myfault_request *r)
{
	switch (r->kind) {
	case MYFAULT_CRASH_HIGH_IRQL:
		myfault_high_irql();
		break;
	case MYFAULT_CRASH_BUFFER_OVERFLOW:
		myfault_buffer_overflow();
		break;
	case MYFAULT_CRASH_CODE_OVERWRITE:
		myfault_code_overwrite();
		break;
	case MYFAULT_CRASH_STACK_TRASH:
		myfault_stack_trash();
		break;
	case MYFAULT_CRASH_NULL_DEREF:
		myfault_null_deref();
		break;
	case MYFAULT_CRASH_STACK_OVERFLOW:
		myfault_stack_overflow(0);
		break;
	case MYFAULT_CRASH_BUG:
		myfault_bug();
		break;
	case MYFAULT_CRASH_DOUBLE_FREE:
		myfault_double_free();
		break;
	case MYFAULT_CRASH_PANIC:
		myfault_panic(r->arg);
		break;
	default:
		return -EINVAL;
	}
	return -EIO; /* still running: the fault did not bring the kernel down */
}

static long myfault_hang(struct myfault_request *r)
{
	switch (r->kind) {
	case MYFAULT_HANG_IRP:
		myfault_hang_irp();
		return 0;
	case MYFAULT_HANG_DPC:
		return stop_machine(myfault_hang_dpc, NULL, cpu_online_mask);
	case MYFAULT_HANG_DEADLOCK:
		kthread_run(myfault_deadlock_thread, &deadlock_a, "myfault_dl_a");
		kthread_run(myfault_deadlock_thread, &deadlock_b, "myfault_dl_b");
		return 0;
	}
	return -EINVAL;
}

static long myfault_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct myfault_request r;
	long ret;

	if (cmd != MYFAULT_IOCTL)
		return -ENOTTY;
	if (copy_from_user(&r, (void __user *)arg, sizeof(r)))
		return -EFAULT;
	r.tag[MYFAULT_TAG_LEN - 1] = 0;
	switch (r.op) {
	case MYFAULT_OP_CRASH:
		return myfault_crash(&r);
	case MYFAULT_OP_HANG:
		return myfault_hang(&r);
	case MYFAULT_OP_LEAK:
		ret = myfault_leak(&r);
		break;
	case MYFAULT_OP_STATUS:
		ret = 0;
		break;
	case MYFAULT_OP_FREE:
		free_all();
		ret = 0;
		break;
	default:
		return -EINVAL;
	}
	mutex_lock(&leak_lock);
	r.leaked_bytes = leaked_bytes;
	r.leaked_blocks = leaked_blocks;
	mutex_unlock(&leak_lock);
	if (copy_to_user((void __user *)arg, &r, sizeof(r)))
		return -EFAULT;
	return ret;
}

static const struct file_operations myfault_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = myfault_ioctl,
};

static struct miscdevice myfault_dev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "myfault",
	.fops = &myfault_fops,
	.mode = 0600,
};

static int __init myfault_init(void)
{
	int err = misc_register(&myfault_dev);

	if (!err)
		pr_info("myfault: loaded; /dev/myfault takes the ioctls of myfault_ioctl.h\n");
	return err;
}

static void __exit myfault_exit(void)
{
	misc_deregister(&myfault_dev);
	free_all();
	pr_info("myfault: unloaded; leaked blocks freed\n");
}

module_init(myfault_init);
module_exit(myfault_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("notmyfault: crash, hang and leak the kernel on purpose");
MODULE_VERSION("1.0");
