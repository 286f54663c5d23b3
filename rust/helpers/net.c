// SPDX-License-Identifier: GPL-2.0
/* Kernel TCP sockets: the node's connection to the referee. */
#include <linux/in.h>
#include <linux/net.h>
#include <linux/tcp.h>
#include <net/net_namespace.h>
#include <net/sock.h>
#include <net/tcp.h>
#include "../dipc_helpers.h"

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

void dipc_sock_shutdown(struct socket *sock)
{
	kernel_sock_shutdown(sock, SHUT_RDWR);
}

void dipc_sock_release(struct socket *sock)
{
	sock_release(sock);
}
