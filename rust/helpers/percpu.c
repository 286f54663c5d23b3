// SPDX-License-Identifier: GPL-2.0
/* Per-CPU event counters, so counting never shares a cache line between CPUs. */
#include <linux/percpu.h>
#include <linux/cpumask.h>
#include "../dipc_helpers.h"

static DEFINE_PER_CPU(u64, dipc_counters[DIPC_NR_COUNTERS]);

/* notrace: called from the hooks' ftrace callback. */
notrace void dipc_counter_inc(unsigned int idx)
{
	if (idx < DIPC_NR_COUNTERS)
		this_cpu_inc(dipc_counters[idx]);
}

u64 dipc_counter_sum(unsigned int idx)
{
	u64 sum = 0;
	int cpu;

	if (idx >= DIPC_NR_COUNTERS)
		return 0;
	for_each_possible_cpu(cpu)
		sum += per_cpu(dipc_counters[idx], cpu);
	return sum;
}
