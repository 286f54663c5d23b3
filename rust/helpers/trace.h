/* SPDX-License-Identifier: GPL-2.0 */
/*
 * dipc's trace events (tracefs: events/dipc/). Each is fired from Rust
 * through a wrapper in trace.c; disabled, a wrapper costs one call and a
 * static-key test.
 *
 *   dipc_call   a request to the referee ended (its frame kind, id, result,
 *               time from send to answer);
 *   dipc_fault  a page fault on a distributed segment had to ask the
 *               referee (segment, page, access, outcome, wait);
 *   dipc_grant  the referee granted this node a page;
 *   dipc_inval  the referee took a page back (or downgraded it).
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM dipc

#if !defined(_DIPC_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _DIPC_TRACE_H

#include <linux/tracepoint.h>

TRACE_EVENT(dipc_call,
	TP_PROTO(u16 kind, u64 req_id, int result, u64 ns),
	TP_ARGS(kind, req_id, result, ns),
	TP_STRUCT__entry(
		__field(u16, kind)
		__field(u64, req_id)
		__field(int, result)
		__field(u64, ns)
	),
	TP_fast_assign(
		__entry->kind = kind;
		__entry->req_id = req_id;
		__entry->result = result;
		__entry->ns = ns;
	),
	TP_printk("kind=%u req=%llu result=%d ns=%llu", __entry->kind,
		  __entry->req_id, __entry->result, __entry->ns)
);

TRACE_EVENT(dipc_fault,
	TP_PROTO(u64 oid, u64 page, bool write, int outcome, u32 requests, u64 ns),
	TP_ARGS(oid, page, write, outcome, requests, ns),
	TP_STRUCT__entry(
		__field(u64, oid)
		__field(u64, page)
		__field(bool, write)
		__field(int, outcome)
		__field(u32, requests)
		__field(u64, ns)
	),
	TP_fast_assign(
		__entry->oid = oid;
		__entry->page = page;
		__entry->write = write;
		__entry->outcome = outcome;
		__entry->requests = requests;
		__entry->ns = ns;
	),
	TP_printk("oid=%llu page=%llu %s outcome=%s requests=%u ns=%llu",
		  __entry->oid, __entry->page,
		  __entry->write ? "write" : "read",
		  __print_symbolic(__entry->outcome, { 0, "ok" }, { 1, "retry" },
				   { 2, "sigbus" }, { 3, "slow" }),
		  __entry->requests, __entry->ns)
);

/* data: 0 the node's copy is current, 1 all zeroes, 2 the bytes came along. */
TRACE_EVENT(dipc_grant,
	TP_PROTO(u64 oid, u64 page, bool write, u8 data),
	TP_ARGS(oid, page, write, data),
	TP_STRUCT__entry(
		__field(u64, oid)
		__field(u64, page)
		__field(bool, write)
		__field(u8, data)
	),
	TP_fast_assign(
		__entry->oid = oid;
		__entry->page = page;
		__entry->write = write;
		__entry->data = data;
	),
	TP_printk("oid=%llu page=%llu %s data=%s", __entry->oid, __entry->page,
		  __entry->write ? "write" : "read",
		  __print_symbolic(__entry->data, { 0, "kept" }, { 1, "zero" }, { 2, "bytes" }))
);

TRACE_EVENT(dipc_inval,
	TP_PROTO(u64 oid, u64 page, bool keep_read, bool sent),
	TP_ARGS(oid, page, keep_read, sent),
	TP_STRUCT__entry(
		__field(u64, oid)
		__field(u64, page)
		__field(bool, keep_read)
		__field(bool, sent)
	),
	TP_fast_assign(
		__entry->oid = oid;
		__entry->page = page;
		__entry->keep_read = keep_read;
		__entry->sent = sent;
	),
	TP_printk("oid=%llu page=%llu %s sent=%d", __entry->oid, __entry->page,
		  __entry->keep_read ? "downgrade" : "drop", __entry->sent)
);

#endif /* _DIPC_TRACE_H */

/* This header is not under include/trace/events/: say where it is. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
