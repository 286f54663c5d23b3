// SPDX-License-Identifier: GPL-2.0
/*
 * fractal: the `make demo` program, written the DIPC way. It is an ordinary
 * SysV IPC program: one shared segment holds two images, one semaphore set
 * coordinates the workers. Under dipc, with its key distributed
 * (/proc/sys/dipc/keys), its workers run on several machines and the
 * segment is distributed shared memory.
 *
 * Each worker renders its share of a Mandelbrot image into the segment,
 * waits at a semaphore barrier for the others, then smooths its share with
 * a 5 x 5 box filter, which reads the rows next to its share that other
 * workers rendered (on other nodes: their pages move through the DSM).
 *
 *   fractal setup KEY WORKERS    create the segment and the semaphore set
 *                                (neither may exist yet)
 *   fractal worker KEY W         worker W (0-based): wait for the start,
 *                                render, barrier, filter; each row done
 *                                counts on the progress semaphore
 *   fractal start KEY            note the start time, let the workers go
 *   fractal progress KEY PERCENT wait until PERCENT of the work is done
 *   fractal wait KEY             wait until every worker has finished
 *   fractal verify KEY [T=V...]  render and filter alone on this node (the
 *                                one-node baseline, timed), compare every
 *                                pixel of both images, draw the result,
 *                                print the speed-up; exit 1 on a mismatch.
 *                                With key=value tags (make bench), also
 *                                print both times as BENCH lines
 *   fractal remove KEY           remove the segment and the set
 *
 * The work is dealt in blocks of rows that fill one page each, round robin
 * (the set's middle rows cost more than its edges), so no two nodes write
 * the same page.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define W 512 /* image width and height, one byte a pixel */
#define H 512
#define BLOCK (PAGE / W) /* rows in one page */
#define NBLOCKS (H / BLOCK)
#define MAX_ITER 2000
#define MAX_WORKERS 64
#define IMAGE_BYTES (W * H)

/* The semaphores. */
enum { SEM_START, SEM_DONE, SEM_ROWS, SEM_BARRIER, NSEMS };

struct header {
	uint32_t magic;
	uint32_t workers;
	double t_start; /* CLOCK_MONOTONIC of the node that ran `start` */
	double t_end;
};

#define MAGIC 0x46524354u /* "TCRF" */

union semun {
	int val;
	struct semid_ds *buf;
	unsigned short *array;
};

static void die(const char *what)
{
	fprintf(stderr, "fractal: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

struct seg {
	struct header *h;
	uint8_t *raw, *smooth;
	int semid;
};

static struct seg open_seg(key_t key)
{
	struct seg s;
	int id = shmget(key, 0, 0);
	char *p;

	if (id < 0)
		die("shmget");
	p = shmat(id, NULL, 0);
	if (p == (void *)-1)
		die("shmat");
	s.h = (struct header *)p;
	if (s.h->magic != MAGIC) {
		fprintf(stderr, "fractal: the segment has no fractal header\n");
		exit(1);
	}
	s.raw = (uint8_t *)p + PAGE;
	s.smooth = s.raw + IMAGE_BYTES;
	s.semid = semget(key, 0, 0);
	if (s.semid < 0)
		die("semget");
	return s;
}

static void semop1(int semid, unsigned short num, short op)
{
	struct sembuf sb = { .sem_num = num, .sem_op = op, .sem_flg = 0 };

	while (semop(semid, &sb, 1) < 0)
		if (errno != EINTR)
			die("semop");
}

/* One row of the Mandelbrot set around (-0.6, 0), escape time per pixel. */
static void render_row(uint8_t *img, int y)
{
	double ci = (y - H / 2) * (2.4 / H);

	for (int x = 0; x < W; x++) {
		double cr = -0.6 + (x - W / 2) * (2.4 / W), zr = 0, zi = 0;
		int n = 0;

		while (n < MAX_ITER && zr * zr + zi * zi <= 4.0) {
			double t = zr * zr - zi * zi + cr;

			zi = 2 * zr * zi + ci;
			zr = t;
			n++;
		}
		img[y * W + x] = n == MAX_ITER ? 255 : n * 6 > 254 ? 254 : (uint8_t)(n * 6);
	}
}

/* One row of the 5 x 5 box filter (the border clamps). */
static void filter_row(const uint8_t *in, uint8_t *out, int y)
{
	for (int x = 0; x < W; x++) {
		unsigned sum = 0;

		for (int dy = -2; dy <= 2; dy++) {
			int yy = y + dy < 0 ? 0 : y + dy >= H ? H - 1 : y + dy;

			for (int dx = -2; dx <= 2; dx++) {
				int xx = x + dx < 0 ? 0 : x + dx >= W ? W - 1 : x + dx;

				sum += in[yy * W + xx];
			}
		}
		out[y * W + x] = (uint8_t)(sum / 25);
	}
}

static int setup(key_t key, unsigned workers)
{
	int id, semid;
	struct header *h;
	unsigned short init[NSEMS] = { 0, 0, 0, (unsigned short)workers };
	union semun arg = { .array = init };

	if (workers < 1 || workers > MAX_WORKERS) {
		fprintf(stderr, "fractal: WORKERS must be 1..%d\n", MAX_WORKERS);
		return 2;
	}
	id = shmget(key, PAGE + 2 * IMAGE_BYTES, IPC_CREAT | IPC_EXCL | 0666);
	if (id < 0)
		die("shmget (IPC_CREAT | IPC_EXCL)");
	semid = semget(key, NSEMS, IPC_CREAT | IPC_EXCL | 0666);
	if (semid < 0)
		die("semget (IPC_CREAT | IPC_EXCL)");
	if (semctl(semid, 0, SETALL, arg) < 0)
		die("semctl SETALL");
	h = shmat(id, NULL, 0);
	if (h == (void *)-1)
		die("shmat");
	h->workers = workers;
	h->magic = MAGIC;
	printf("fractal: a %dx%d Mandelbrot image, then a 5x5 box filter, by %u workers; "
	       "segment %#x (%d KiB), semaphore set %#x\n",
	       W, H, workers, (unsigned)key, (PAGE + 2 * IMAGE_BYTES) / 1024, (unsigned)key);
	shmdt(h);
	return 0;
}

static int worker(key_t key, unsigned w)
{
	struct seg s = open_seg(key);
	unsigned workers = s.h->workers;
	double t0, t1, t2, t3;
	char host[64] = "?";

	if (w >= workers) {
		fprintf(stderr, "fractal: worker %u of %u?\n", w, workers);
		return 2;
	}
	gethostname(host, sizeof(host));
	semop1(s.semid, SEM_START, -1);
	t0 = now();
	for (int b = w; b < NBLOCKS; b += workers) {
		for (int y = b * BLOCK; y < (b + 1) * BLOCK; y++)
			render_row(s.raw, y);
		semop1(s.semid, SEM_ROWS, BLOCK);
	}
	t1 = now();
	/* The barrier: every worker's rows are rendered before any filters. */
	semop1(s.semid, SEM_BARRIER, -1);
	semop1(s.semid, SEM_BARRIER, 0);
	t2 = now();
	for (int b = w; b < NBLOCKS; b += workers) {
		for (int y = b * BLOCK; y < (b + 1) * BLOCK; y++)
			filter_row(s.raw, s.smooth, y);
		semop1(s.semid, SEM_ROWS, BLOCK);
	}
	t3 = now();
	printf("fractal: worker %u on %s: rendered %d rows in %.2f s, waited %.2f s at the "
	       "barrier, filtered in %.2f s\n",
	       w, host, (NBLOCKS - (int)w + (int)workers - 1) / (int)workers * BLOCK, t1 - t0,
	       t2 - t1, t3 - t2);
	semop1(s.semid, SEM_DONE, 1);
	return 0;
}

static int start(key_t key)
{
	struct seg s = open_seg(key);

	s.h->t_start = now();
	semop1(s.semid, SEM_START, (short)s.h->workers);
	printf("fractal: started %u workers\n", s.h->workers);
	return 0;
}

static int progress(key_t key, int percent)
{
	struct seg s = open_seg(key);
	double t_start = s.h->t_start;
	int rows;

	for (;;) {
		rows = semctl(s.semid, SEM_ROWS, GETVAL);
		if (rows < 0)
			die("semctl GETVAL");
		if (rows * 100 >= percent * 2 * H)
			break;
		usleep(100 * 1000);
	}
	printf("fractal: %3d%% done (%d of %d rows rendered and filtered) after %.1f s\n",
	       rows * 100 / (2 * H), rows, 2 * H, now() - t_start);
	return 0;
}

static int wait_all(key_t key)
{
	struct seg s = open_seg(key);

	semop1(s.semid, SEM_DONE, -(short)s.h->workers);
	s.h->t_end = now();
	printf("fractal: all %u workers done in %.2f s\n", s.h->workers,
	       s.h->t_end - s.h->t_start);
	return 0;
}

/* The image in characters, darker for more iterations. */
static void draw(const uint8_t *img)
{
	static const char shades[] = " .:-=+*#%@";

	for (int y = 0; y < H; y += H / 24) {
		char line[65];

		for (int x = 0; x < 64; x++) {
			unsigned v = img[(y + H / 48) * W + x * (W / 64) + W / 128];

			line[x] = shades[v * (sizeof(shades) - 2) / 255];
		}
		line[64] = 0;
		printf("  %s\n", line);
	}
}

static int verify(key_t key, int ntags, char **tags)
{
	struct seg s = open_seg(key);
	uint8_t *raw = malloc(IMAGE_BYTES), *smooth = malloc(IMAGE_BYTES);
	double t0, t_one, t_dist = s.h->t_end - s.h->t_start;
	size_t bad_raw = 0, bad_smooth = 0;

	if (!raw || !smooth)
		die("malloc");
	if (s.h->t_end == 0) {
		fprintf(stderr, "fractal: run `fractal wait` first\n");
		return 2;
	}
	t0 = now();
	for (int y = 0; y < H; y++)
		render_row(raw, y);
	for (int y = 0; y < H; y++)
		filter_row(raw, smooth, y);
	t_one = now() - t0;
	for (size_t i = 0; i < IMAGE_BYTES; i++) {
		bad_raw += s.raw[i] != raw[i];
		bad_smooth += s.smooth[i] != smooth[i];
	}
	draw(s.smooth);
	if (bad_raw || bad_smooth) {
		printf("fractal: WRONG: %zu rendered and %zu filtered pixels of %d differ from "
		       "this node's own result\n",
		       bad_raw, bad_smooth, IMAGE_BYTES);
		return 1;
	}
	printf("fractal: correct: all %d pixels of both images equal this node's own result\n",
	       IMAGE_BYTES);
	printf("fractal: %u workers: %.2f s; one node alone: %.2f s; speed-up %.2fx\n",
	       s.h->workers, t_dist, t_one, t_one / t_dist);
	if (ntags > 0) {
		char extra[256] = "";

		for (int i = 0; i < ntags; i++) {
			strncat(extra, " ", sizeof(extra) - strlen(extra) - 1);
			strncat(extra, tags[i], sizeof(extra) - strlen(extra) - 1);
		}
		printf("BENCH fractal_nodes unit=s value=%.3f workers=%u%s\n", t_dist,
		       s.h->workers, extra);
		printf("BENCH fractal_alone unit=s value=%.3f%s\n", t_one, extra);
	}
	return 0;
}

static int remove_all(key_t key)
{
	int id = shmget(key, 0, 0), semid = semget(key, 0, 0);

	if (id < 0 || shmctl(id, IPC_RMID, NULL) < 0)
		die("shm IPC_RMID");
	if (semid < 0 || semctl(semid, 0, IPC_RMID) < 0)
		die("sem IPC_RMID");
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: fractal setup KEY WORKERS | worker KEY W | start KEY |\n"
			"       progress KEY PERCENT | wait KEY | verify KEY | remove KEY\n");
	exit(2);
}

int main(int argc, char **argv)
{
	key_t key;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3)
		usage();
	key = (key_t)strtoul(argv[2], NULL, 0);
	if (!strcmp(argv[1], "setup") && argc == 4)
		return setup(key, strtoul(argv[3], NULL, 0));
	if (!strcmp(argv[1], "worker") && argc == 4)
		return worker(key, strtoul(argv[3], NULL, 0));
	if (!strcmp(argv[1], "start") && argc == 3)
		return start(key);
	if (!strcmp(argv[1], "progress") && argc == 4)
		return progress(key, atoi(argv[3]));
	if (!strcmp(argv[1], "wait") && argc == 3)
		return wait_all(key);
	if (!strcmp(argv[1], "verify") && argc >= 3)
		return verify(key, argc - 3, argv + 3);
	if (!strcmp(argv[1], "remove") && argc == 3)
		return remove_all(key);
	usage();
	return 2;
}
