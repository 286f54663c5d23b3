// SPDX-License-Identifier: GPL-2.0
/* Kernel TCP sockets: the node's connection to the referee. */
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
 * the send fails, as a send timeout in mid-frame would.
 */
static uint test_partial_sends;
module_param(test_partial_sends, uint, 0644);
MODULE_PARM_DESC(test_partial_sends, "Test only: cut this many of the next one-way frames in half, failing their sends");

bool dipc_test_partial_send(void)
{
	uint n = READ_ONCE(test_partial_sends);

	while (n) {
		uint seen = cmpxchg(&test_partial_sends, n, n - 1);

		if (seen == n)
			return true;
		n = seen;
	}
	return false;
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

int dipc_sock_send(struct socket *sock, const void *buf, size_t len)
{
	struct kvec vec = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };

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
