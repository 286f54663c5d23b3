// SPDX-License-Identifier: GPL-2.0
/*
 * Node authentication: the secret file, HMAC-SHA256 through the kernel
 * crypto API, random nonces. The protocol itself is in Rust (src/conn.rs).
 */
#include <crypto/hash.h>
#include <crypto/utils.h>
#include <linux/err.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/random.h>
#include <linux/slab.h>
#include <linux/string.h>
#include "../dipc_helpers.h"

/* The path is a parameter; the secret never is (nor is it in sysfs). */
static char dipc_secret_file[256];
module_param_string(secret_file, dipc_secret_file, sizeof(dipc_secret_file), 0444);
MODULE_PARM_DESC(secret_file,
		 "File with the cluster secret (root-only, mode 0600 or 0400); empty: no authentication");

const char *dipc_secret_file_param(void)
{
	return dipc_secret_file;
}

int dipc_read_secret(const char *path, u8 *buf, size_t cap)
{
	struct file *f;
	struct inode *inode;
	loff_t pos = 0;
	ssize_t n;

	f = filp_open(path, O_RDONLY | O_NOFOLLOW, 0);
	if (IS_ERR(f))
		return PTR_ERR(f);
	inode = file_inode(f);
	if (!S_ISREG(inode->i_mode)) {
		n = -EINVAL;
		goto out;
	}
	/* Only its owner, root, may read or write it. */
	if ((inode->i_mode & 0077) || !uid_eq(inode->i_uid, GLOBAL_ROOT_UID)) {
		n = -EPERM;
		goto out;
	}
	n = kernel_read(f, buf, cap, &pos);
out:
	filp_close(f, NULL);
	return n;
}

int dipc_hmac_sha256(const u8 *key, size_t key_len, const u8 *data, size_t len, u8 *out)
{
	struct crypto_shash *tfm;
	int err;

	tfm = crypto_alloc_shash("hmac(sha256)", 0, 0);
	if (IS_ERR(tfm))
		return PTR_ERR(tfm);
	err = crypto_shash_setkey(tfm, key, key_len);
	if (!err)
		err = crypto_shash_tfm_digest(tfm, data, len, out);
	crypto_free_shash(tfm);
	return err;
}

void dipc_random_bytes(u8 *buf, size_t len)
{
	get_random_bytes(buf, len);
}

bool dipc_memeq_secret(const u8 *a, const u8 *b, size_t len)
{
	return !crypto_memneq(a, b, len);
}
