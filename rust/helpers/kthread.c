// SPDX-License-Identifier: GPL-2.0
/* Kernel threads: the connection thread's lifecycle and its sleeps. */
#include <linux/err.h>
#include <linux/kthread.h>
#include <linux/sched/signal.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include "../dipc_helpers.h"

static int dipc_thread_fn(void *data)
{
	return dipc_rust_thread(data);
}

struct task_struct *dipc_kthread_start(void *data, const char *name)
{
	struct task_struct *task = kthread_create(dipc_thread_fn, data, "%s", name);

	if (IS_ERR(task))
		return task;
	get_task_struct(task);
	wake_up_process(task);
	return task;
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

void dipc_kthread_sleep_ms(unsigned int ms)
{
	/* Set the state before the check, so kthread_stop()'s wake-up is not lost. */
	set_current_state(TASK_INTERRUPTIBLE);
	if (!kthread_should_stop())
		schedule_timeout(msecs_to_jiffies(ms));
	__set_current_state(TASK_RUNNING);
}
