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
 * Every wrapped VMA holds a module reference, so `rmmod` is refused while a
 * distributed segment is mapped anywhere on the node.
 */
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/mmap_lock.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/sched/signal.h>
#include <linux/shmem_fs.h>
#include <linux/wait.h>
#include "../dipc_helpers.h"

/* The kernel's shm_vm_ops, learned from the first VMA a shmat() created. */
static const struct vm_operations_struct *dipc_orig_ops;
static struct vm_operations_struct dipc_shm_ops;
static void *dipc_shm_ctx;
static DECLARE_WAIT_QUEUE_HEAD(dipc_shm_wq);
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
	vm_fault_t ret;
	int r;

	r = dipc_rust_shm_acquire(dipc_shm_ctx, mapping, vmf->pgoff, write,
				  vmf->flags & FAULT_FLAG_USER);
	if (r != DIPC_FAULT_OK)
		return dipc_fault_result(r);
	ret = dipc_orig_ops->fault(vmf);
	if (unlikely(ret & VM_FAULT_ERROR) || !(ret & VM_FAULT_LOCKED))
		return ret;
	/* The page is locked: no invalidation can run until it is mapped. */
	if (!dipc_rust_shm_valid(dipc_shm_ctx, mapping, vmf->pgoff, write)) {
		folio_unlock(page_folio(vmf->page));
		put_page(vmf->page);
		vmf->page = NULL;
		return VM_FAULT_NOPAGE;
	}
	return ret;
}

static vm_fault_t dipc_vm_page_mkwrite(struct vm_fault *vmf)
{
	struct address_space *mapping = dipc_vma_mapping(vmf->vma);
	struct folio *folio = page_folio(vmf->page);
	int r;

	r = dipc_rust_shm_acquire(dipc_shm_ctx, mapping, vmf->pgoff, true,
				  vmf->flags & FAULT_FLAG_USER);
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

/* Installs the wrapper on vma. mmap write lock held. */
static void dipc_wrap_vma(struct vm_area_struct *vma)
{
	vma_start_write(vma);
	vma->vm_ops = &dipc_shm_ops;
	/*
	 * Write-notify: the shared mapping's pages are mapped read-only, and
	 * the first store calls .page_mkwrite (vma_set_page_prot() is not
	 * exported; this is what it computes for a write-notified VMA).
	 */
	vma->vm_page_prot = vm_get_page_prot(vma->vm_flags & ~VM_SHARED);
	__module_get(THIS_MODULE);
	atomic_inc(&dipc_wrapped);
}

static void dipc_unwrap_vma(struct vm_area_struct *vma)
{
	vma_start_write(vma);
	vma->vm_ops = dipc_orig_ops;
	vma->vm_page_prot = vm_get_page_prot(vma->vm_flags);
	atomic_dec(&dipc_wrapped);
	/* The caller runs in a hooked syscall, which holds a reference too. */
	module_put(THIS_MODULE);
}

void *dipc_shm_wrap(unsigned long addr)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	void *mapping = NULL;

	mmap_write_lock(mm);
	vma = vma_lookup(mm, addr);
	if (!vma || vma->vm_start != addr || !vma->vm_file || !vma->vm_ops)
		goto out;
	if (!dipc_orig_ops) {
		/* shmat() just created this VMA: its ops are shm_vm_ops. */
		if (!vma->vm_ops->fault || !vma->vm_ops->open || !vma->vm_ops->close ||
		    vma->vm_ops->page_mkwrite || vma->vm_ops->map_pages)
			goto out;
		dipc_shm_ops = *vma->vm_ops;
		dipc_shm_ops.fault = dipc_vm_fault;
		dipc_shm_ops.page_mkwrite = dipc_vm_page_mkwrite;
		dipc_shm_ops.open = dipc_vm_open;
		dipc_shm_ops.close = dipc_vm_close;
		WRITE_ONCE(dipc_orig_ops, vma->vm_ops);
	}
	if (vma->vm_ops != dipc_orig_ops)
		goto out;
	dipc_wrap_vma(vma);
	mapping = dipc_vma_mapping(vma);
out:
	mmap_write_unlock(mm);
	return mapping;
}

void *dipc_shm_unwrap(unsigned long addr, unsigned int *n)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	struct address_space *mapping = NULL;
	VMA_ITERATOR(vmi, mm, 0);

	*n = 0;
	if (!dipc_orig_ops)
		return NULL;
	mmap_write_lock(mm);
	vma = vma_lookup(mm, addr);
	if (vma && vma->vm_start == addr && vma->vm_ops == &dipc_shm_ops) {
		mapping = dipc_vma_mapping(vma);
		/* shmdt() looks for shm_vm_ops: put it back on the segment's VMAs. */
		for_each_vma(vmi, vma) {
			if (vma->vm_ops == &dipc_shm_ops &&
			    dipc_vma_mapping(vma) == mapping) {
				dipc_unwrap_vma(vma);
				(*n)++;
			}
		}
	}
	mmap_write_unlock(mm);
	return mapping;
}

unsigned int dipc_shm_rewrap(void *mapping)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	unsigned int n = 0;
	VMA_ITERATOR(vmi, mm, 0);

	mmap_write_lock(mm);
	for_each_vma(vmi, vma) {
		if (vma->vm_ops == dipc_orig_ops && vma->vm_file &&
		    dipc_vma_mapping(vma) == mapping) {
			dipc_wrap_vma(vma);
			n++;
		}
	}
	mmap_write_unlock(mm);
	return n;
}

void dipc_shm_mapping_get(void *mapping)
{
	struct address_space *m = mapping;

	/* The inode (and its pages) outlive the segment until we let go. */
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
	long r = wait_event_killable_timeout(dipc_shm_wq,
					     dipc_rust_shm_changed(seg, idx, word),
					     msecs_to_jiffies(ms));

	if (r < 0)
		return r;
	return r > 0;
}

void dipc_shm_wake(void)
{
	wake_up_all(&dipc_shm_wq);
}

bool dipc_fatal_signal_pending(void)
{
	return fatal_signal_pending(current);
}
