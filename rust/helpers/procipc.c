// SPDX-License-Identifier: GPL-2.0
/*
 * /proc/sysvipc/{sem,msg,shm}: a shadow's line shows its distributed
 * object as the referee has it (src/procipc.rs says why and how fresh).
 *
 * One ftrace_ops (IPMODIFY) sends sysvipc_proc_open() and the three
 * sysvipc_*_proc_show() (static functions of ipc/, reached through the
 * proc_ops and the ipc_proc_iface) to the wrappers below, which call the
 * originals through their entries (checked for endbr64; the callback lets
 * calls from inside the module through). The open wrapper asks the Rust
 * side to refresh its answers for the file's class, which may sleep: it
 * runs before the original open, with no lock held. The show wrappers run
 * under the object's spinlock and RCU, as the originals do: they take only
 * the Rust side's spinlock.
 *
 * A shadow's line is printed with the kernel's own format for the class.
 * The key, id, mode, owner and creator are the shadow's (which has the
 * object's); the rest is the referee's. A segment's rss and swap are this
 * node's memory for it: they are taken from the line the original prints,
 * which is then replaced.
 */
#include <linux/build_bug.h>
#include <linux/fs.h>
#include <linux/ftrace.h>
#include <linux/ipc.h>
#include <linux/ipc_namespace.h>
#include <linux/nsproxy.h>
#include <linux/sched.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/string.h>
#include <linux/uidgid.h>
#include "../dipc_helpers.h"

static_assert(sizeof(struct dipc_proc_stat) == 48);

enum { DIPC_PROC_OPEN, DIPC_PROC_SEM, DIPC_PROC_MSG, DIPC_PROC_SHM, DIPC_PROC_N };

static const char *const dipc_proc_names[DIPC_PROC_N] = {
	"sysvipc_proc_open",
	"sysvipc_sem_proc_show",
	"sysvipc_msg_proc_show",
	"sysvipc_shm_proc_show",
};
static unsigned long dipc_proc_fentry[DIPC_PROC_N], dipc_proc_entry[DIPC_PROC_N];
static void *dipc_proc_ctx;
static bool dipc_proc_registered;

static int dipc_proc_show_orig(int which, struct seq_file *s, void *it)
{
	/* The function's entry, checked for endbr64 at load. */
	int (*orig)(struct seq_file *, void *) = (void *)dipc_proc_entry[which];

	return orig(s, it);
}

/* The id table a /proc/sysvipc file lists, from its name; -1 if unknown. */
static int dipc_proc_table(struct file *file)
{
	const char *name = (const char *)file_dentry(file)->d_name.name;

	if (!strcmp(name, "sem"))
		return 0;
	if (!strcmp(name, "msg"))
		return 1;
	if (!strcmp(name, "shm"))
		return 2;
	return -1;
}

static int dipc_proc_open(struct inode *inode, struct file *file)
{
	int (*orig)(struct inode *, struct file *) = (void *)dipc_proc_entry[DIPC_PROC_OPEN];
	int cls = dipc_proc_table(file), ret;

	if (cls >= 0)
		dipc_rust_proc_refresh(dipc_proc_ctx, cls);
	ret = orig(inode, file);
	module_put(THIS_MODULE);
	return ret;
}

/* ipc/sem.c's sysvipc_sem_proc_show() format. */
static int dipc_sem_show(struct seq_file *s, void *it)
{
	struct user_namespace *user_ns = seq_user_ns(s);
	struct kern_ipc_perm *p = it;
	struct dipc_proc_stat st;
	int ret = 0;

	if (!dipc_rust_proc_stat(dipc_proc_ctx, 0, p->id, &st))
		ret = dipc_proc_show_orig(DIPC_PROC_SEM, s, it);
	else
		seq_printf(s, "%10d %10d  %4o %10u %5u %5u %5u %5u %10llu %10llu\n", p->key, p->id,
			   p->mode, (unsigned int)st.size, from_kuid_munged(user_ns, p->uid),
			   from_kgid_munged(user_ns, p->gid), from_kuid_munged(user_ns, p->cuid),
			   from_kgid_munged(user_ns, p->cgid), st.time[0], st.time[1]);
	module_put(THIS_MODULE);
	return ret;
}

/* ipc/msg.c's sysvipc_msg_proc_show() format. */
static int dipc_msg_show(struct seq_file *s, void *it)
{
	struct user_namespace *user_ns = seq_user_ns(s);
	struct kern_ipc_perm *p = it;
	struct dipc_proc_stat st;
	int ret = 0;

	if (!dipc_rust_proc_stat(dipc_proc_ctx, 1, p->id, &st))
		ret = dipc_proc_show_orig(DIPC_PROC_MSG, s, it);
	else
		seq_printf(s,
			   "%10d %10d  %4o  %10lu %10lu %5u %5u %5u %5u %5u %5u %10llu %10llu %10llu\n",
			   p->key, p->id, p->mode, (unsigned long)st.size, (unsigned long)st.count,
			   st.pid[0], st.pid[1], from_kuid_munged(user_ns, p->uid),
			   from_kgid_munged(user_ns, p->gid), from_kuid_munged(user_ns, p->cuid),
			   from_kgid_munged(user_ns, p->cgid), st.time[0], st.time[1], st.time[2]);
	module_put(THIS_MODULE);
	return ret;
}

/*
 * The last two numbers of the line in buf[0..len) (ending in '\n'): a
 * segment's rss and swap as the original printed them. False if the line
 * is not as expected.
 */
static bool dipc_last_two(const char *buf, size_t len, unsigned long *rss, unsigned long *swp)
{
	char line[256], *f, *g;

	if (len == 0 || len >= sizeof(line) || buf[len - 1] != '\n')
		return false;
	memcpy(line, buf, len - 1);
	line[len - 1] = '\0';
	f = strrchr(line, ' ');
	if (!f || kstrtoul(f + 1, 10, swp))
		return false;
	while (f > line && f[-1] == ' ')
		f--;
	*f = '\0';
	g = strrchr(line, ' ');
	return g && !kstrtoul(g + 1, 10, rss);
}

#if BITS_PER_LONG <= 32
#define DIPC_SIZE_SPEC "%10lu"
#else
#define DIPC_SIZE_SPEC "%21lu"
#endif

/* ipc/shm.c's sysvipc_shm_proc_show() format. */
static int dipc_shm_show(struct seq_file *s, void *it)
{
	struct user_namespace *user_ns = seq_user_ns(s);
	struct kern_ipc_perm *p = it;
	struct dipc_proc_stat st;
	unsigned long rss, swp;
	size_t start = s->count;
	int ret;

	ret = dipc_proc_show_orig(DIPC_PROC_SHM, s, it);
	if (ret || seq_has_overflowed(s) || !dipc_rust_proc_stat(dipc_proc_ctx, 2, p->id, &st) ||
	    !dipc_last_two(s->buf + start, s->count - start, &rss, &swp))
		goto out;
	s->count = start;
	seq_printf(s,
		   "%10d %10d  %4o " DIPC_SIZE_SPEC " %5u %5u  "
		   "%5lu %5u %5u %5u %5u %10llu %10llu %10llu " DIPC_SIZE_SPEC " " DIPC_SIZE_SPEC
		   "\n",
		   p->key, p->id, p->mode, (unsigned long)st.size, st.pid[0], st.pid[1],
		   (unsigned long)st.count, from_kuid_munged(user_ns, p->uid),
		   from_kgid_munged(user_ns, p->gid), from_kuid_munged(user_ns, p->cuid),
		   from_kgid_munged(user_ns, p->cgid), st.time[0], st.time[1], st.time[2], rss, swp);
out:
	module_put(THIS_MODULE);
	return ret;
}

static void *const dipc_proc_wrappers[DIPC_PROC_N] = {
	dipc_proc_open,
	dipc_sem_show,
	dipc_msg_show,
	dipc_shm_show,
};

static notrace __aligned(16) void dipc_proc_handler(unsigned long ip, unsigned long parent_ip,
						   struct ftrace_ops *op,
						   struct ftrace_regs *fregs)
{
	unsigned int i;

	/*
	 * Switched off, or a reader in another IPC namespace (whose ids are
	 * not the shadows'; the module keeps its shadows in the initial one,
	 * where the connection thread applies what the referee says): the
	 * files show the local objects.
	 */
	if (!READ_ONCE(dipc_enabled) || within_module(parent_ip, THIS_MODULE) ||
	    current->nsproxy->ipc_ns != &init_ipc_ns)
		return;
	for (i = 0; i < DIPC_PROC_N; i++)
		if (dipc_proc_fentry[i] == ip)
			break;
	if (i == DIPC_PROC_N || !try_module_get(THIS_MODULE))
		return;
	ftrace_regs_set_instruction_pointer(fregs, (unsigned long)dipc_proc_wrappers[i]);
}

static struct ftrace_ops dipc_proc_ops = {
	.func = dipc_proc_handler,
	.flags = FTRACE_OPS_FL_IPMODIFY | FTRACE_OPS_FL_PERMANENT,
};

int dipc_proc_register(void *ctx)
{
	unsigned int i;
	int err;

	dipc_proc_ctx = ctx;
	for (i = 0; i < DIPC_PROC_N; i++) {
		err = dipc_resolve_function(dipc_proc_names[i], &dipc_proc_fentry[i],
					    &dipc_proc_entry[i]);
		if (err) {
			pr_warn("dipc: cannot wrap %s: %d\n", dipc_proc_names[i], err);
			goto fail;
		}
		err = ftrace_set_filter_ip(&dipc_proc_ops, dipc_proc_fentry[i], 0, 0);
		if (err)
			goto fail;
	}
	err = register_ftrace_function(&dipc_proc_ops);
	if (err)
		goto fail;
	dipc_proc_registered = true;
	return 0;
fail:
	ftrace_free_filter(&dipc_proc_ops);
	return err;
}

void dipc_proc_unregister(void)
{
	if (dipc_proc_registered) {
		unregister_ftrace_function(&dipc_proc_ops);
		dipc_proc_registered = false;
	}
	ftrace_free_filter(&dipc_proc_ops);
}
