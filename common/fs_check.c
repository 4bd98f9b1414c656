/* fs_check.c - filesystem type of a path by statfs(2) magic numbers (see fs_check.h). */
#include "common/fs_check.h"
#include "common/log.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

static const struct { unsigned long magic; const char *name; int network; } FS[] = {
    {0x6969, "nfs", 1},          {0x517B, "smb", 1},        {0xFF534D42, "cifs", 1},  {0xFE534D42, "smb2", 1},
    {0x00C36400, "ceph", 1},     {0x0BD00BD0, "lustre", 1}, {0x47504653, "gpfs", 1},  {0x5346414F, "afs", 1},
    {0x6B414653, "afs", 1},      {0x01021997, "9p", 1},     {0x19830326, "beegfs", 1}, {0x65735546, "fuse", 1},
    {0x013111A8, "ibrix", 1},    {0x564C, "ncp", 1},        {0x7461636F, "ocfs2", 1}, {0x6A656A63, "virtiofs", 1},
    {0xEF53, "ext4", 0},         {0x58465342, "xfs", 0},    {0x9123683E, "btrfs", 0}, {0x01021994, "tmpfs", 0},
    {0x794C7630, "overlayfs", 0}, {0x2FC12FC1, "zfs", 0},   {0xF2F52010, "f2fs", 0},  {0x4D44, "vfat", 0},
};

static const char *network_names[] = {"nfs", "nfs4", "smb", "smb2", "smb3", "cifs", "ceph", "lustre", "gpfs", "afs",
                                      "9p", "beegfs", "fuse", "glusterfs", "ibrix", "ncp", "ocfs2", "virtiofs", NULL};

int fs_kind(const char *path, char *name, size_t n, cis_err *err) {
    const char *ov = getenv("CISWEEP_FSTYPE_OVERRIDE");
    if (ov && *ov) {
        snprintf(name, n, "%s", ov);
        for (int i = 0; network_names[i]; i++)
            if (!strcmp(ov, network_names[i])) return 1;
        return 0;
    }
    struct statfs s;
    int r = statfs(path, &s);
    if (r != 0 && errno == ENOENT) {   /* not created yet: its folder decides */
        char *copy = xstrdup(path);
        r = statfs(dirname(copy), &s);
        free(copy);
    }
    if (r != 0) return err_set(err, CIS_EIO, "%s: statfs: %s (expected an existing file or folder)", path, strerror(errno));
    for (size_t i = 0; i < sizeof FS / sizeof FS[0]; i++)
        if ((unsigned long)(unsigned int)s.f_type == FS[i].magic) {
            snprintf(name, n, "%s", FS[i].name);
            return FS[i].network;
        }
    snprintf(name, n, "type 0x%lx", (unsigned long)(unsigned int)s.f_type);
    return 0;
}

int fs_check_db_local(const char *db_path, bool allow_network, cis_err *err) {
    char name[64];
    int k = fs_kind(db_path, name, sizeof name, err);
    if (k < 0) return -1;
    if (k == 0) return 0;
    if (allow_network) {
        LOG_W("%s is on a network filesystem (%s); SQLite's WAL is not safe there: continuing because of --allow-network-db", db_path, name);
        return 0;
    }
    return err_set(err, CIS_EINVAL,
                   "%s is on a network filesystem (%s): SQLite's WAL needs local locks and shared memory, and a database "
                   "there can be corrupted. Keep the database on the coordinator's local disk (the artifact cache may be "
                   "shared) or pass --allow-network-db if you know this filesystem is safe",
                   db_path, name);
}
