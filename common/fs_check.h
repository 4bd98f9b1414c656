/* fs_check.h - what kind of filesystem a path lives on, so that the coordinator can refuse a SQLite
 * database on a network filesystem (WAL needs shared memory and POSIX locks that NFS, SMB, Lustre
 * and friends do not give reliably: https://www.sqlite.org/wal.html, "WAL does not work over a
 * network filesystem"). Issue 15. */
#ifndef CISWEEP_FS_CHECK_H
#define CISWEEP_FS_CHECK_H

#include "common/util.h"

/* fs_kind: statfs(2) the path (or, when it does not exist yet, its folder) and name its filesystem
 * type into name (e.g. "ext4", "nfs", "fuse"). Returns 1 for a network (or possibly network, FUSE)
 * filesystem, 0 for a local one, -1 when the path cannot be examined (err names it).
 * The environment variable CISWEEP_FSTYPE_OVERRIDE (tests only: "nfs", "ext4", ...) replaces what
 * statfs says, because a real NFS mount cannot be made in the test environment. */
int fs_kind(const char *path, char *name, size_t n, cis_err *err);

/* fs_check_db_local: 0 when the database path is on a local filesystem or allow_network is true
 * (a warning is logged then); -1 with a message naming the path, the filesystem and the option
 * --allow-network-db otherwise. */
int fs_check_db_local(const char *db_path, bool allow_network, cis_err *err);

#endif
