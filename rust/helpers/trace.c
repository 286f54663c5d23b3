// SPDX-License-Identifier: GPL-2.0
/*
 * The trace events of trace.h, and the wrappers Rust calls (a Rust crate
 * cannot expand TRACE_EVENT's macros).
 */
#define CREATE_TRACE_POINTS
#include "trace.h"
#include "../dipc_helpers.h"

void dipc_trace_call(u16 kind, u64 req_id, int result, u64 ns)
{
	trace_dipc_call(kind, req_id, result, ns);
}

void dipc_trace_fault(u64 oid, u64 page, bool write, int outcome, u32 requests, u64 ns)
{
	trace_dipc_fault(oid, page, write, outcome, requests, ns);
}

void dipc_trace_grant(u64 oid, u64 page, bool write, u8 data)
{
	trace_dipc_grant(oid, page, write, data);
}

void dipc_trace_inval(u64 oid, u64 page, bool keep_read, bool sent)
{
	trace_dipc_inval(oid, page, keep_read, sent);
}
