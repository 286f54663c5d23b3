// SPDX-License-Identifier: GPL-2.0
/*
 * msgtool: message queue steps for the cluster scenarios, one plain SysV
 * call sequence per subcommand. Keys are passed as numbers (0x...).
 *
 *   msgtool create KEY [QBYTES]       create (0666), optionally set msg_qbytes
 *   msgtool send KEY SENDER COUNT MAXLEN
 *                                     COUNT messages of random types 1..5 and
 *                                     sizes 20..MAXLEN, each carrying its
 *                                     sender, per-sender sequence number and
 *                                     a checksum; blocking sends
 *   msgtool stop KEY N                N stop messages (type 99)
 *   msgtool recv KEY LOG MODE         receive until a stop message, each
 *                                     message straight into the next slot of
 *                                     the file LOG (a shared mapping), so a
 *                                     message the kernel delivered is in the
 *                                     log even if the receiver is killed right
 *                                     after; MODE any|lowest|except
 *   msgtool report IP PORT LOG...     check every logged message (checksum,
 *                                     per sender and type the order sent) and
 *                                     send "sender seq" lines to a collector
 *   msgtool collect PORT CONNS SENDERS COUNT
 *                                     take CONNS reports; every message of
 *                                     every sender must appear exactly once
 *   msgtool wait-log LOG N            wait (up to 100 s) until LOG holds N
 *                                     messages
 *   msgtool fill KEY                  fill the queue with 1-byte messages
 *   msgtool drain KEY                 receive everything there is (no wait)
 *   msgtool expect KEY QNUM           msg_qnum must be QNUM
 *   msgtool wait-send KEY ERRNAME     a blocking 1-byte send must end with
 *                                     ERRNAME (or "ok")
 *   msgtool wait-recv KEY ERRNAME     a blocking receive must end so
 *   msgtool rmid KEY
 *   msgtool noent KEY                 msgget(KEY, 0) must fail with ENOENT
 *   msgtool seq-send KEY FROM TO      send "FROM" .. "TO-1" (type 1, the
 *                                     number as text), blocking sends
 *   msgtool seq-recv KEY FROM TO [nowait]
 *                                     receive exactly "FROM" .. "TO-1", in
 *                                     that order (any type; with nowait,
 *                                     each receive must find its message)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXTEXT 2048
#define STOP_TYPE 99
#define TYPES 5
#define MAGIC 0x4d534731u /* "MSG1" */
#define MAX_SENDERS 16
#define MAX_COUNT 100000
#define LOG_SLOTS 20000

struct slot {
	long mtype;
	unsigned char text[MAXTEXT];
};

/* What each data message starts with. */
struct head {
	uint32_t magic;
	uint32_t sender;
	uint32_t seq;
	uint32_t len; /* of the whole text */
	uint32_t sum; /* over the bytes after the head */
};

static void die(const char *what)
{
	fprintf(stderr, "msgtool: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int qid(const char *k)
{
	int id = msgget((key_t)strtol(k, NULL, 0), 0);

	if (id < 0)
		die("msgget");
	return id;
}

static uint32_t checksum(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ *p++) * 16777619u;
	return h;
}

static uint64_t rng;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static int do_send(const char *k, int sender, int count, int maxlen)
{
	static struct slot m;
	struct head h;
	int id = qid(k), i, j;

	rng = 0x9e3779b97f4a7c15ull * (uint64_t)(sender + 1);
	if (maxlen > MAXTEXT || maxlen < (int)sizeof(h))
		maxlen = MAXTEXT;
	for (i = 0; i < count; i++) {
		int len = sizeof(h) + rnd() % (maxlen - sizeof(h) + 1);

		m.mtype = 1 + rnd() % TYPES;
		for (j = sizeof(h); j < len; j++)
			m.text[j] = rnd();
		h.magic = MAGIC;
		h.sender = sender;
		h.seq = i;
		h.len = len;
		h.sum = checksum(m.text + sizeof(h), len - sizeof(h));
		memcpy(m.text, &h, sizeof(h));
		while (msgsnd(id, &m, len, 0) < 0)
			if (errno != EINTR)
				die("msgsnd");
	}
	printf("sender %d: sent %d\n", sender, count);
	return 0;
}

static int do_stop(const char *k, int n)
{
	struct {
		long mtype;
		char c;
	} m = { STOP_TYPE, 0 };
	int id = qid(k);

	while (n-- > 0)
		if (msgsnd(id, &m, 1, 0) < 0)
			die("msgsnd stop");
	return 0;
}

static int do_recv(const char *k, const char *log, const char *mode)
{
	long typ = 0;
	int flg = 0, id = qid(k), fd;
	struct slot *slots;
	long i;

	if (!strcmp(mode, "lowest"))
		typ = -STOP_TYPE;
	else if (!strcmp(mode, "except")) {
		typ = TYPES + 1; /* never sent: everything else matches */
		flg = MSG_EXCEPT;
	}
	fd = open(log, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)LOG_SLOTS * sizeof(struct slot)) < 0)
		die(log);
	slots = mmap(NULL, (size_t)LOG_SLOTS * sizeof(struct slot), PROT_READ | PROT_WRITE,
		     MAP_SHARED, fd, 0);
	if (slots == MAP_FAILED)
		die("mmap");
	for (i = 0; i < LOG_SLOTS; i++) {
		if (msgrcv(id, &slots[i], MAXTEXT, typ, flg) < 0) {
			if (errno == EINTR) {
				i--;
				continue;
			}
			die("msgrcv");
		}
		if (slots[i].mtype == STOP_TYPE)
			break;
	}
	printf("received %ld\n", i);
	return 0;
}

/* Checks one log; writes "sender seq" for each data message to fd. */
static long check_log(const char *log, FILE *out, long *bad)
{
	int last[MAX_SENDERS][TYPES + 1];
	struct slot *s;
	long n = 0, i;
	int fd = open(log, O_RDONLY);

	memset(last, 0xff, sizeof(last));
	if (fd < 0)
		die(log);
	s = mmap(NULL, (size_t)LOG_SLOTS * sizeof(struct slot), PROT_READ, MAP_SHARED, fd, 0);
	if (s == MAP_FAILED)
		die("mmap");
	for (i = 0; i < LOG_SLOTS && s[i].mtype != 0 && s[i].mtype != STOP_TYPE; i++) {
		struct head h;

		memcpy(&h, s[i].text, sizeof(h));
		if (h.magic != MAGIC || h.sender >= MAX_SENDERS || s[i].mtype > TYPES ||
		    h.len > MAXTEXT ||
		    checksum(s[i].text + sizeof(h), h.len - sizeof(h)) != h.sum) {
			fprintf(stderr, "%s slot %ld: corrupt message\n", log, i);
			(*bad)++;
			continue;
		}
		if ((int)h.seq <= last[h.sender][s[i].mtype]) {
			fprintf(stderr, "%s slot %ld: sender %u type %ld seq %u after %d\n", log, i,
				h.sender, s[i].mtype, h.seq, last[h.sender][s[i].mtype]);
			(*bad)++;
		}
		last[h.sender][s[i].mtype] = h.seq;
		fprintf(out, "%u %u\n", h.sender, h.seq);
		n++;
	}
	fprintf(stderr, "%s: %ld messages\n", log, n);
	return n;
}

static int do_wait_log(const char *log, long want)
{
	size_t len = (size_t)LOG_SLOTS * sizeof(struct slot);
	int fd = open(log, O_RDONLY), tries;
	struct slot *s;
	long n = 0;

	if (fd < 0)
		die(log);
	s = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (s == MAP_FAILED)
		die("mmap");
	for (tries = 0; tries < 1000; tries++) {
		while (n < LOG_SLOTS && s[n].mtype != 0)
			n++;
		if (n >= want) {
			printf("%s holds %ld messages\n", log, n);
			return 0;
		}
		usleep(100000);
	}
	printf("%s holds only %ld messages\n", log, n);
	return 1;
}

static int do_report(const char *ip, int port, int nlogs, char **logs)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	long bad = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0), i;
	FILE *out;

	inet_pton(AF_INET, ip, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	out = fdopen(fd, "w");
	for (i = 0; i < nlogs; i++)
		check_log(logs[i], out, &bad);
	fprintf(out, "bad %ld\n", bad);
	fclose(out);
	return bad ? 1 : 0;
}

static int do_collect(int port, int conns, int senders, int count)
{
	static unsigned char seen[MAX_SENDERS][MAX_COUNT];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	long total = 0, bad = 0, missing = 0, dup = 0;
	int one = 1, l = socket(AF_INET, SOCK_STREAM, 0), c, s, q;
	char line[64];

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 8) < 0)
		die("listen");
	for (c = 0; c < conns; c++) {
		FILE *in = fdopen(accept(l, NULL, NULL), "r");
		unsigned int sn, seq;
		long b;

		if (!in)
			die("accept");
		while (fgets(line, sizeof(line), in)) {
			if (sscanf(line, "bad %ld", &b) == 1) {
				bad += b;
			} else if (sscanf(line, "%u %u", &sn, &seq) == 2 && sn < MAX_SENDERS &&
				   seq < MAX_COUNT) {
				if (seen[sn][seq]++)
					dup++;
				total++;
			} else {
				bad++;
			}
		}
		fclose(in);
	}
	for (s = 0; s < senders; s++)
		for (q = 0; q < count; q++)
			if (!seen[s][q])
				missing++;
	for (s = senders; s < MAX_SENDERS; s++)
		for (q = 0; q < MAX_COUNT; q++)
			if (seen[s][q])
				bad++;
	printf("collected %ld messages: %ld missing, %ld duplicated, %ld bad\n", total, missing,
	       dup, bad);
	return missing || dup || bad ? 1 : 0;
}

static int do_seq_send(const char *k, long from, long to)
{
	struct {
		long mtype;
		char c[32];
	} m = { 1, { 0 } };
	int id = qid(k);

	for (long i = from; i < to; i++) {
		int n = snprintf(m.c, sizeof(m.c), "%ld", i);

		if (msgsnd(id, &m, n, 0) < 0)
			die("msgsnd");
	}
	printf("sent %ld..%ld\n", from, to - 1);
	return 0;
}

static int do_seq_recv(const char *k, long from, long to, int flags)
{
	struct {
		long mtype;
		char c[33];
	} m;
	int id = qid(k);

	for (long i = from; i < to; i++) {
		ssize_t n = msgrcv(id, &m, sizeof(m.c) - 1, 0, flags);

		if (n < 0) {
			fprintf(stderr, "msgtool: waiting for %ld: %s\n", i, strerror(errno));
			return 1;
		}
		m.c[n] = 0;
		if (strtol(m.c, NULL, 10) != i) {
			fprintf(stderr, "msgtool: expected %ld, received \"%s\"\n", i, m.c);
			return 1;
		}
	}
	printf("received %ld..%ld in order\n", from, to - 1);
	return 0;
}

static int errno_is(long r, const char *name)
{
	const char *got = r < 0 ? strerrorname_np(errno) : "ok";

	printf("%s\n", got);
	return strcmp(got, name) ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct {
		long mtype;
		char c[MAXTEXT];
	} m = { 1, { 0 } };
	struct msqid_ds ds;
	const char *cmd = argc > 1 ? argv[1] : "";
	int id, n;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "create") && argc >= 3) {
		id = msgget((key_t)strtol(argv[2], NULL, 0), IPC_CREAT | 0666);
		if (id < 0)
			die("msgget");
		if (argc > 3) {
			if (msgctl(id, IPC_STAT, &ds) < 0)
				die("IPC_STAT");
			ds.msg_qbytes = strtoul(argv[3], NULL, 0);
			if (msgctl(id, IPC_SET, &ds) < 0)
				die("IPC_SET");
		}
		printf("id %d\n", id);
		return 0;
	}
	if (!strcmp(cmd, "send") && argc == 6)
		return do_send(argv[2], atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (!strcmp(cmd, "stop") && argc == 4)
		return do_stop(argv[2], atoi(argv[3]));
	if (!strcmp(cmd, "recv") && argc == 5)
		return do_recv(argv[2], argv[3], argv[4]);
	if (!strcmp(cmd, "report") && argc >= 5)
		return do_report(argv[2], atoi(argv[3]), argc - 4, argv + 4);
	if (!strcmp(cmd, "collect") && argc == 6)
		return do_collect(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (!strcmp(cmd, "wait-log") && argc == 4)
		return do_wait_log(argv[2], atol(argv[3]));
	if (!strcmp(cmd, "fill") && argc == 3) {
		id = qid(argv[2]);
		for (n = 0; msgsnd(id, &m, 1, IPC_NOWAIT) == 0; n++)
			;
		if (errno != EAGAIN)
			die("msgsnd");
		printf("filled with %d\n", n);
		return 0;
	}
	if (!strcmp(cmd, "drain") && argc == 3) {
		id = qid(argv[2]);
		for (n = 0; msgrcv(id, &m, sizeof(m.c), 0, IPC_NOWAIT) >= 0; n++)
			;
		if (errno != ENOMSG)
			die("msgrcv");
		printf("drained %d\n", n);
		return 0;
	}
	if (!strcmp(cmd, "expect") && argc == 4) {
		if (msgctl(qid(argv[2]), IPC_STAT, &ds) < 0)
			die("IPC_STAT");
		printf("qnum %lu\n", (unsigned long)ds.msg_qnum);
		return ds.msg_qnum == strtoul(argv[3], NULL, 0) ? 0 : 1;
	}
	if (!strcmp(cmd, "wait-send") && argc == 4)
		return errno_is(msgsnd(qid(argv[2]), &m, 1, 0), argv[3]);
	if (!strcmp(cmd, "wait-recv") && argc == 4)
		return errno_is(msgrcv(qid(argv[2]), &m, sizeof(m.c), 0, 0), argv[3]);
	if (!strcmp(cmd, "rmid") && argc == 3)
		return msgctl(qid(argv[2]), IPC_RMID, NULL) < 0 ? 1 : 0;
	if (!strcmp(cmd, "seq-send") && argc == 5)
		return do_seq_send(argv[2], atol(argv[3]), atol(argv[4]));
	if (!strcmp(cmd, "seq-recv") && (argc == 5 || argc == 6))
		return do_seq_recv(argv[2], atol(argv[3]), atol(argv[4]),
				   argc == 6 && !strcmp(argv[5], "nowait") ? IPC_NOWAIT : 0);
	if (!strcmp(cmd, "noent") && argc == 3)
		return errno_is(msgget((key_t)strtol(argv[2], NULL, 0), 0), "ENOENT");
	fprintf(stderr, "usage: see the comment at the top of msgtool.c\n");
	return 2;
}
