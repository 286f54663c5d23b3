// SPDX-License-Identifier: GPL-2.0
/* Kernel threads: the connection thread's lifecycle and its sleeps. */
#include <linux/err.h>
#include <linux/hrtimer.h>
#include <linux/kthread.h>
#include <linux/moduleparam.h>
#include <linux/sched/signal.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include "../dipc_helpers.h"

static int dipc_thread_fn(void *data)
{
	return dipc_rust_thread(data);
}

/*
 * The connection thread runs SCHED_FIFO at the lowest real-time priority:
 * on a PREEMPT_LAZY kernel a woken fair-class thread waits for the next
 * tick (4 ms at HZ=250) behind a task that spins on the CPU, and every
 * grant, invalidation and answer goes through this thread. It does a
 * bounded amount of work per frame and then sleeps in recv(), and the
 * kernel's RT throttling still bounds it.
 */
static bool rt_thread = true;
module_param(rt_thread, bool, 0444);
MODULE_PARM_DESC(rt_thread, "Run the connection thread SCHED_FIFO (default 1)");

/* Peer threads apply page grants too: they run at the same priority. */
struct task_struct *dipc_kthread_start_fn(int (*fn)(void *), void *data, const char *name)
{
	struct task_struct *task = kthread_create(fn, data, "%s", name);

	if (IS_ERR(task))
		return task;
	if (rt_thread)
		sched_set_fifo_low(task);
	get_task_struct(task);
	wake_up_process(task);
	return task;
}

struct task_struct *dipc_kthread_start(void *data, const char *name)
{
	return dipc_kthread_start_fn(dipc_thread_fn, data, name);
}

void dipc_kthread_stop(struct task_struct *task)
{
	kthread_stop(task);
	put_task_struct(task);
}

bool dipc_kthread_should_stop(void)
{
	return kthread_should_stop();
}

bool dipc_sleep_killable_ms(unsigned int ms)
{
	schedule_timeout_killable(msecs_to_jiffies(ms));
	return !fatal_signal_pending(current);
}

bool dipc_sleep_us(unsigned int us, bool killable)
{
	ktime_t t = ns_to_ktime((u64)us * NSEC_PER_USEC);

	set_current_state(killable ? TASK_KILLABLE : TASK_INTERRUPTIBLE);
	schedule_hrtimeout_range(&t, 100 * NSEC_PER_USEC, HRTIMER_MODE_REL);
	return killable ? !fatal_signal_pending(current) : !signal_pending(current);
}

void dipc_kthread_sleep_ms(unsigned int ms)
{
	/* Set the state before the check, so kthread_stop()'s wake-up is not lost. */
	set_current_state(TASK_INTERRUPTIBLE);
	if (!kthread_should_stop())
		schedule_timeout(msecs_to_jiffies(ms));
	__set_current_state(TASK_RUNNING);
}
