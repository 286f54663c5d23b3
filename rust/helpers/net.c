// SPDX-License-Identifier: GPL-2.0
/* Kernel TCP sockets: the node's connection to the referee, and to other nodes. */
#include <linux/atomic.h>
#include <linux/in.h>
#include <linux/moduleparam.h>
#include <linux/net.h>
#include <linux/tcp.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/tcp.h>
#include "../dipc_helpers.h"

/*
 * Test only (tests/cluster/races.scenario): the next this-many frames a task
 * sends without awaiting a reply (page requests, cancels) go out half, and
 * the send fails, as a send timeout in mid-frame would (returns 1). With
 * test_partial_kind set, the next frames of that kind instead (the wire's
 * frame kind number: 12 for a cancel, 13 for an exit) go out half and
 * count as sent, the connection breaking after them (returns 2): a frame
 * lost on the way while the sender goes on.
 */
static uint test_partial_sends;
module_param(test_partial_sends, uint, 0644);
MODULE_PARM_DESC(test_partial_sends, "Test only: cut this many of the next one-way frames in half, failing their sends");
static uint test_partial_kind;
module_param(test_partial_kind, uint, 0644);
MODULE_PARM_DESC(test_partial_kind, "Test only: test_partial_sends cuts frames of this kind only, one-way or not (0: one-way frames)");

int dipc_test_partial_send(unsigned int kind, bool oneway)
{
	uint n = READ_ONCE(test_partial_sends);
	uint want = READ_ONCE(test_partial_kind);

	if (!n || (want ? kind != want : !oneway))
		return 0;

	while (n) {
		uint seen = cmpxchg(&test_partial_sends, n, n - 1);

		if (seen == n)
			return want ? 2 : 1;
		n = seen;
	}
	return 0;
}

struct socket *dipc_sock_connect(u32 addr, u16 port, unsigned int timeout_ms,
				 unsigned int rcv_timeout_ms, int *err)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(addr),
	};
	struct socket *sock;

	*err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, &sock);
	if (*err)
		return NULL;
	/* connect() waits at most the send timeout, then fails with EINPROGRESS. */
	sock->sk->sk_sndtimeo = msecs_to_jiffies(timeout_ms);
	sock->sk->sk_rcvtimeo = msecs_to_jiffies(rcv_timeout_ms);
	*err = kernel_connect(sock, (struct sockaddr_unsized *)&sin, sizeof(sin), 0);
	if (*err) {
		sock_release(sock);
		return NULL;
	}
	tcp_sock_set_nodelay(sock->sk);
	return sock;
}

/*
 * The port this node takes page transfers from other nodes on (0: none; the
 * referee then sends every page itself).
 */
static ushort peer_port = 7440;
module_param(peer_port, ushort, 0444);
MODULE_PARM_DESC(peer_port, "TCP port for page transfers from other nodes (0: every page through the referee)");

u16 dipc_peer_port(void)
{
	return peer_port;
}

struct socket *dipc_sock_listen(u16 port, unsigned int rcv_timeout_ms, int *err)
{
	struct sockaddr_in sin = {
		.sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_ANY),
	};
	struct socket *sock;

	*err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, &sock);
	if (*err)
		return NULL;
	sock_set_reuseaddr(sock->sk);
	/* accept() waits at most this long, then fails with EAGAIN. */
	sock->sk->sk_rcvtimeo = msecs_to_jiffies(rcv_timeout_ms);
	*err = kernel_bind(sock, (struct sockaddr_unsized *)&sin, sizeof(sin));
	if (!*err)
		*err = kernel_listen(sock, 16);
	if (*err) {
		sock_release(sock);
		return NULL;
	}
	return sock;
}

struct socket *dipc_sock_accept(struct socket *lsock, unsigned int timeout_ms,
				unsigned int rcv_timeout_ms, u32 *peer_ip, int *err)
{
	struct sockaddr_in sin = {};
	struct socket *sock;

	*err = kernel_accept(lsock, &sock, 0);
	if (*err)
		return NULL;
	if (kernel_getpeername(sock, (struct sockaddr *)&sin) < 0 ||
	    sin.sin_family != AF_INET) {
		sock_release(sock);
		*err = -EAFNOSUPPORT;
		return NULL;
	}
	*peer_ip = ntohl(sin.sin_addr.s_addr);
	sock->sk->sk_sndtimeo = msecs_to_jiffies(timeout_ms);
	sock->sk->sk_rcvtimeo = msecs_to_jiffies(rcv_timeout_ms);
	tcp_sock_set_nodelay(sock->sk);
	return sock;
}

int dipc_sock_send(struct socket *sock, const void *buf, size_t len)
{
	struct kvec vec = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

	return kernel_sendmsg(sock, &msg, &vec, 1, len);
}

/*
 * Sends all of buf without waiting, or nothing: -EAGAIN when the socket's
 * send buffer has no room for it now (twice its length, for the buffers'
 * overhead). A short count means part of it went (the caller drops the
 * connection).
 */
int dipc_sock_send_nowait(struct socket *sock, const void *buf, size_t len)
{
	struct kvec vec = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL | MSG_DONTWAIT };

	if (sk_stream_wspace(sock->sk) < 2 * (int)len)
		return -EAGAIN;
	return kernel_sendmsg(sock, &msg, &vec, 1, len);
}

int dipc_sock_recv(struct socket *sock, void *buf, size_t len)
{
	struct kvec vec = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

	return kernel_recvmsg(sock, &msg, &vec, 1, len, 0);
}

void dipc_sock_set_rcvtimeo(struct socket *sock, unsigned int ms)
{
	WRITE_ONCE(sock->sk->sk_rcvtimeo, max(msecs_to_jiffies(ms), 1UL));
}

void dipc_sock_shutdown(struct socket *sock)
{
	kernel_sock_shutdown(sock, SHUT_RDWR);
}

void dipc_sock_release(struct socket *sock)
{
	sock_release(sock);
}
