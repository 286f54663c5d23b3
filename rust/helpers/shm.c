// SPDX-License-Identifier: GPL-2.0
/*
 * Distributed shared memory: the page-fault side. An attached distributed
 * segment's VMAs get a copy of the kernel's shm vm_operations whose .fault
 * and .page_mkwrite first ask Rust (dipc_rust_shm_acquire) for access to the
 * page, which may wait for the referee, and then run the original handler.
 * The VMA is write-notified (mapped read-only until .page_mkwrite), so the
 * first store to a page held for reading traps.
 *
 * The page's folio lock orders a fault against an invalidation: the
 * connection thread changes a page's access and unmaps it with the folio
 * locked, and a fault checks the access again with the folio locked before
 * the page is mapped (dipc_rust_shm_valid). A fault that loses the race
 * returns VM_FAULT_NOPAGE and the access faults again. Nothing waits for the
 * network with a folio locked.
 *
 * A VMA is wrapped where shmat() creates it: the module's ftrace hook on
 * shm_mmap() (helpers/hooks.c) calls dipc_shm_mmap() with the mmap write lock
 * held, so no fork, fault or other thread sees the attach before it is
 * wrapped. A fork or a split copies the wrapper. shmdt() of a distributed
 * segment is done here (dipc_shm_detach()): the kernel's shmdt() only knows
 * its own VMA ops, and the wrapper never comes off a VMA.
 *
 * Large folios (shmem THP, mTHP or a collapse): finish_fault() maps every page
 * of a large folio at once, so a fault through a large folio first needs the
 * access asked for on every page of it. Wrapped VMAs are VM_NOHUGEPAGE, so
 * their own faults allocate base pages unless a program asks otherwise.
 *
 * Every wrapped VMA holds a module reference, so `rmmod` is refused while a
 * distributed segment is mapped anywhere on the node.
 */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/sched/signal.h>
#include <linux/hash.h>
#include <linux/shmem_fs.h>
#include <linux/wait.h>
#include "../dipc_helpers.h"

/*
 * The kernel's shm_vm_ops, learned from the first VMA shm_mmap() set up, and
 * the wrapper's table built from it. Filled once under dipc_ops_lock and then
 * published (release); a VMA is only wrapped after that, so the fault, open
 * and close handlers always see the whole table.
 */
static const struct vm_operations_struct *dipc_orig_ops;
static struct vm_operations_struct dipc_shm_ops;
static DEFINE_SPINLOCK(dipc_ops_lock);
static void *dipc_shm_ctx;
/*
 * Faults waiting for a page sleep on the queue their (segment, page) hashes
 * to, so a grant or an invalidation wakes the tasks waiting for that page
 * (and the rare ones that share its queue), not every waiting fault.
 */
#define DIPC_SHM_WQ_BITS 8
/*
 * Initialised statically: the connection thread, which wakes them, starts
 * before the hooks (and dipc_shm_init()) are registered.
 */
#define DIPC_WQ(i) [i] = __WAIT_QUEUE_HEAD_INITIALIZER(dipc_shm_wq[i])
#define DIPC_WQ4(i) DIPC_WQ(i), DIPC_WQ((i) + 1), DIPC_WQ((i) + 2), DIPC_WQ((i) + 3)
#define DIPC_WQ16(i) DIPC_WQ4(i), DIPC_WQ4((i) + 4), DIPC_WQ4((i) + 8), DIPC_WQ4((i) + 12)
#define DIPC_WQ64(i) DIPC_WQ16(i), DIPC_WQ16((i) + 16), DIPC_WQ16((i) + 32), DIPC_WQ16((i) + 48)
static struct wait_queue_head dipc_shm_wq[1 << DIPC_SHM_WQ_BITS] = {
	DIPC_WQ64(0), DIPC_WQ64(64), DIPC_WQ64(128), DIPC_WQ64(192),
};
static_assert(ARRAY_SIZE(dipc_shm_wq) == 256);

static struct wait_queue_head *dipc_shm_wq_of(void *seg, unsigned long idx)
{
	return &dipc_shm_wq[hash_long((unsigned long)seg ^ hash_long(idx, BITS_PER_LONG),
				      DIPC_SHM_WQ_BITS)];
}
/* Wrapped VMAs on this node. */
static atomic_t dipc_wrapped = ATOMIC_INIT(0);

notrace bool dipc_shm_wrapped(void)
{
	return atomic_read(&dipc_wrapped) != 0;
}

static struct address_space *dipc_vma_mapping(struct vm_area_struct *vma)
{
	return vma->vm_file->f_mapping;
}

static vm_fault_t dipc_fault_result(int r)
{
	switch (r) {
	case DIPC_FAULT_OK:
		return 0;
	case DIPC_FAULT_RETRY:
		return VM_FAULT_NOPAGE;
	default:
		return VM_FAULT_SIGBUS;
	}
}

static vm_fault_t dipc_vm_fault(struct vm_fault *vmf)
{
	struct address_space *mapping = dipc_vma_mapping(vmf->vma);
	bool write = vmf->flags & FAULT_FLAG_WRITE;
	bool user = vmf->flags & FAULT_FLAG_USER;
	struct folio *folio;
	vm_fault_t ret;
	long missing;
	int r;

	/*
	 * Where the fault may be retried, a wait for the referee that outlasts
	 * DIPC_FAULT_BUDGET_MS goes on without the mmap or VMA lock, so the
	 * process's other faults, mmap, munmap and mprotect are not held up by
	 * a slow or unreachable referee; then the fault is retried. A quick
	 * grant is used at once (a retry would widen the window in which
	 * another node takes the page back). The VMA may be gone after the
	 * lock is released; `mapping` is then only compared with the
	 * segments' mappings.
	 */
	if (fault_flag_allow_retry_first(vmf->flags) &&
	    !(vmf->flags & FAULT_FLAG_RETRY_NOWAIT)) {
		r = dipc_rust_shm_acquire(dipc_shm_ctx, mapping, vmf->pgoff, write, user,
					  DIPC_FAULT_BUDGET_MS, false);
		if (r == DIPC_FAULT_SLOW) {
			release_fault_lock(vmf);
			dipc_rust_shm_acquire(dipc_shm_ctx, mapping, vmf->pgoff, write, user, 0,
					      true);
			return VM_FAULT_RETRY;
		}
	} else {
		r = dipc_rust_shm_acquire(dipc_shm_ctx, mapping, vmf->pgoff, write, user, 0, false);
	}
	if (r != DIPC_FAULT_OK)
		return dipc_fault_result(r);
	ret = dipc_orig_ops->fault(vmf);
	if (unlikely(ret & VM_FAULT_ERROR) || !(ret & VM_FAULT_LOCKED))
		return ret;
	/*
	 * The folio is locked: no invalidation can run until it is mapped.
	 * finish_fault() maps every page of a large folio (and with write
	 * access on a write fault), so each of them must be allowed.
	 */
	folio = page_folio(vmf->page);
	if (!folio_test_large(folio)) {
		missing = dipc_rust_shm_valid(dipc_shm_ctx, mapping, vmf->pgoff, write) ?
			-1 : (long)vmf->pgoff;
	} else {
		missing = dipc_rust_shm_first_invalid(dipc_shm_ctx, mapping, folio->index,
						      folio_nr_pages(folio), write);
	}
	if (missing < 0)
		return ret;
	folio_unlock(folio);
	put_page(vmf->page);
	vmf->page = NULL;
	/* Another page of the folio: ask for it, then fault again. */
	if (missing != (long)vmf->pgoff) {
		r = dipc_rust_shm_acquire(dipc_shm_ctx, mapping, missing, write, user, 0, false);
		if (r != DIPC_FAULT_OK)
			return dipc_fault_result(r);
	}
	return VM_FAULT_NOPAGE;
}

static vm_fault_t dipc_vm_page_mkwrite(struct vm_fault *vmf)
{
	struct address_space *mapping = dipc_vma_mapping(vmf->vma);
	struct folio *folio = page_folio(vmf->page);
	int r;

	r = dipc_rust_shm_acquire(dipc_shm_ctx, mapping, vmf->pgoff, true,
				  vmf->flags & FAULT_FLAG_USER, 0, false);
	if (r != DIPC_FAULT_OK)
		return dipc_fault_result(r);
	folio_lock(folio);
	if (folio->mapping != mapping ||
	    !dipc_rust_shm_valid(dipc_shm_ctx, mapping, vmf->pgoff, true)) {
		folio_unlock(folio);
		return VM_FAULT_NOPAGE;
	}
	return VM_FAULT_LOCKED;
}

static void dipc_vm_open(struct vm_area_struct *vma)
{
	/* A wrapped VMA exists, so the module is live: a plain get is safe. */
	__module_get(THIS_MODULE);
	atomic_inc(&dipc_wrapped);
	dipc_orig_ops->open(vma);
	dipc_rust_shm_vma_open(dipc_shm_ctx, dipc_vma_mapping(vma), 1);
}

static void dipc_vm_close(struct vm_area_struct *vma)
{
	dipc_rust_shm_vma_open(dipc_shm_ctx, dipc_vma_mapping(vma), -1);
	dipc_orig_ops->close(vma);
	atomic_dec(&dipc_wrapped);
	/* dipc_hooks_unregister() waits (RCU Tasks) until we have returned. */
	module_put(THIS_MODULE);
}

void dipc_shm_init(void *ctx)
{
	dipc_shm_ctx = ctx;
}

/*
 * Builds the wrapper's table from the kernel's shm_vm_ops (`ops`), once.
 * Returns whether `ops` is the table the wrapper wraps.
 */
static bool dipc_learn_ops(const struct vm_operations_struct *ops)
{
	const struct vm_operations_struct *orig = smp_load_acquire(&dipc_orig_ops);

	if (orig)
		return ops == orig;
	/* What shm_vm_ops looks like: fault, open, close; no write notify. */
	if (!ops || !ops->fault || !ops->open || !ops->close || ops->page_mkwrite ||
	    ops->map_pages)
		return false;
	spin_lock(&dipc_ops_lock);
	if (!dipc_orig_ops) {
		dipc_shm_ops = *ops;
		dipc_shm_ops.fault = dipc_vm_fault;
		dipc_shm_ops.page_mkwrite = dipc_vm_page_mkwrite;
		dipc_shm_ops.open = dipc_vm_open;
		dipc_shm_ops.close = dipc_vm_close;
		smp_store_release(&dipc_orig_ops, ops);
	}
	spin_unlock(&dipc_ops_lock);
	return ops == dipc_orig_ops;
}

/*
 * shm_mmap(), redirected here by the ftrace hook (helpers/hooks.c): the
 * original sets the VMA up, then a VMA of a distributed segment's shadow is
 * wrapped before the mmap write lock (held by the caller) is dropped.
 */
int dipc_shm_mmap(struct file *file, struct vm_area_struct *vma)
{
	int ret = dipc_shm_mmap_original(file, vma);

	if (ret || !dipc_learn_ops(vma->vm_ops))
		return ret;
	if (!dipc_rust_shm_mmap(dipc_shm_ctx, dipc_vma_mapping(vma)))
		return 0;
	vma->vm_ops = &dipc_shm_ops;
	/*
	 * Write-notify: the shared mapping's pages are mapped read-only, and
	 * the first store calls .page_mkwrite (mmap sets vm_page_prot from
	 * the ops after this returns; for a remap it is set here).
	 */
	vm_flags_set(vma, VM_NOHUGEPAGE);
	vma->vm_page_prot = vm_get_page_prot(vma->vm_flags & ~VM_SHARED);
	__module_get(THIS_MODULE);
	atomic_inc(&dipc_wrapped);
	return 0;
}

static bool dipc_is_shm_vma(struct vm_area_struct *vma)
{
	return vma->vm_ops == &dipc_shm_ops ||
	       (vma->vm_ops && vma->vm_ops == READ_ONCE(dipc_orig_ops));
}

/* How many VMAs one pass of dipc_shm_detach() unmaps. */
#define DIPC_DETACH_BATCH 16

/*
 * shmdt(addr) when the segment found at addr is distributed: what
 * ksys_shmdt() does, for the wrapped VMAs. The first shm VMA at or above
 * addr whose offset matches its distance from addr names the segment (if it
 * is not distributed, *mapping stays NULL and the caller runs the kernel's
 * shmdt()); then every VMA of that attach within the segment's size is
 * unmapped. vm_munmap() takes the mmap lock itself, so the VMAs are found in
 * batches under the lock and unmapped after it. Returns 0 or -EINTR.
 */
long dipc_shm_detach(unsigned long addr, void **mapping)
{
	struct mm_struct *mm = current->mm;
	unsigned long start[DIPC_DETACH_BATCH], end[DIPC_DETACH_BATCH];
	struct file *file = NULL;
	loff_t size = 0;
	unsigned int n, i;

	*mapping = NULL;
	if (addr & ~PAGE_MASK || !READ_ONCE(dipc_orig_ops))
		return 0;
	do {
		struct vm_area_struct *vma;
		VMA_ITERATOR(vmi, mm, addr);

		n = 0;
		if (mmap_write_lock_killable(mm)) {
			if (file)
				fput(file);
			return -EINTR;
		}
		for_each_vma(vmi, vma) {
			/* Nothing of the attach lies beyond the segment's size. */
			if (file && (loff_t)(vma->vm_end - addr) > size)
				break;
			if (!dipc_is_shm_vma(vma) ||
			    (vma->vm_start - addr) / PAGE_SIZE != vma->vm_pgoff)
				continue;
			if (!file) {
				/* The kernel's own segment: its shmdt() does it all. */
				if (vma->vm_ops != &dipc_shm_ops)
					break;
				/* Held, so a later batch compares with a live file. */
				file = get_file(vma->vm_file);
				size = PAGE_ALIGN(i_size_read(file_inode(file)));
				*mapping = dipc_vma_mapping(vma);
			} else if (vma->vm_file != file) {
				continue;
			}
			start[n] = vma->vm_start;
			end[n] = vma->vm_end;
			if (++n == DIPC_DETACH_BATCH)
				break;
		}
		mmap_write_unlock(mm);
		for (i = 0; i < n; i++)
			vm_munmap(start[i], end[i] - start[i]);
	} while (n == DIPC_DETACH_BATCH);
	if (file)
		fput(file);
	return 0;
}

void dipc_shm_mapping_get(void *mapping)
{
	struct address_space *m = mapping;

	/*
	 * The inode (and its pages) outlive the segment until we let go. The
	 * caller maps the segment, so the inode is alive.
	 */
	WARN_ON(!igrab(m->host));
}

void dipc_shm_mapping_put(void *mapping)
{
	struct address_space *m = mapping;

	iput(m->host);
}

void *dipc_shm_page_lock(void *mapping, unsigned long idx)
{
	struct folio *folio = shmem_read_folio_gfp(mapping, idx, GFP_KERNEL);

	if (IS_ERR(folio))
		return NULL;
	folio_lock(folio);
	return folio;
}

void dipc_shm_page_unlock(void *folio)
{
	folio_unlock(folio);
	folio_put(folio);
}

/*
 * dipc moves pages of 4 KiB (the wire's PAGE_LEN, and the buffers the Rust
 * side passes here); a kernel with larger pages (arm64's 16K or 64K page
 * configurations) would have these copies run past them. Such a build
 * fails here rather than load.
 */
static_assert(PAGE_SIZE == 4096, "dipc needs 4 KiB pages (CONFIG_ARM64_4K_PAGES on arm64)");

void dipc_shm_page_copy_in(void *folio, unsigned long idx, const void *src)
{
	struct folio *f = folio;
	void *dst = kmap_local_page(folio_file_page(f, idx));

	if (src)
		memcpy(dst, src, PAGE_SIZE);
	else
		memset(dst, 0, PAGE_SIZE);
	kunmap_local(dst);
	folio_mark_dirty(f);
}

void dipc_shm_page_copy_out(void *folio, unsigned long idx, void *dst)
{
	struct folio *f = folio;
	void *src = kmap_local_page(folio_file_page(f, idx));

	memcpy(dst, src, PAGE_SIZE);
	kunmap_local(src);
}

void dipc_shm_unmap(void *mapping, unsigned long idx)
{
	unmap_mapping_pages(mapping, idx, 1, false);
}

int dipc_shm_wait(void *seg, unsigned long idx, u32 word, unsigned int ms)
{
	long r = wait_event_killable_timeout(*dipc_shm_wq_of(seg, idx),
					     dipc_rust_shm_changed(seg, idx, word),
					     msecs_to_jiffies(ms));

	if (r < 0)
		return r;
	return r > 0;
}

void dipc_shm_wake_page(void *seg, unsigned long idx)
{
	wake_up_all(dipc_shm_wq_of(seg, idx));
}

void dipc_shm_wake(void)
{
	for (int i = 0; i < ARRAY_SIZE(dipc_shm_wq); i++)
		wake_up_all(&dipc_shm_wq[i]);
}

bool dipc_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}
