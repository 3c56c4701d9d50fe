/* The file module (src/file.h): atomic writes, whole-file reads, directories. */
#include "file.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define FILE_READ_NONREGULAR_MAX ((size_t)1 << 30)

/* The folder part of path ("." when there is none); malloc'd, NULL when out of memory. */
static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, slash ? path : ".", n);
        d[n] = '\0';
    }
    return d;
}

/* Removes PATH.tmp.<pid> files that writers killed before their rename left behind (SIGKILL, a
 * crash): only names of exactly that form, only for a pid that is not ours and names no live
 * process. Best effort: a file that cannot be removed is left alone. Never touches PATH itself. */
static void remove_stale_temps(const char *path) {
    char *dir = dir_of(path);
    if (!dir) return;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return;
    }
    const struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (strncmp(nm, base, bl) != 0 || strncmp(nm + bl, ".tmp.", 5) != 0) continue;
        const char *digits = nm + bl + 5;
        size_t nd = strlen(digits);
        int all = nd > 0 && nd < 12;
        for (size_t i = 0; all && i < nd; i++) all = isdigit((unsigned char)digits[i]) != 0;
        if (!all) continue;
        long pid = strtol(digits, NULL, 10);
        if (pid <= 0 || pid == (long)getpid()) continue;
        errno = 0;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive, or not ours to judge */
        size_t n = strlen(dir) + strlen(nm) + 2;
        char *full = malloc(n);
        if (!full) break;
        snprintf(full, n, "%s/%s", dir, nm);
        (void)unlink(full);
        free(full);
    }
    closedir(d);
    free(dir);
}

me_status me_file_write_chunks(const char *path, const me_file_chunk *chunks, int n, me_error *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());

    errno = 0;
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        int e = errno;
        me_status st = me_error_set(err, ME_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp, strerror(e));
        free(tmp);
        return st;
    }
    const char *step = NULL;
    int e = 0;
    for (int i = 0; i < n && !step; i++) {
        errno = 0;
        if (chunks[i].size && fwrite(chunks[i].data, 1, chunks[i].size, fp) != chunks[i].size) {
            step = "cannot write";
            e = errno;
        }
    }
    errno = 0;
    if (!step && fflush(fp) != 0) {
        step = "cannot flush";
        e = errno;
    }
    if (!step && fsync(fileno(fp)) != 0) {
        step = "cannot sync";
        e = errno;
    }
    errno = 0;
    if (fclose(fp) != 0 && !step) {
        step = "cannot close";
        e = errno;
    }
    if (!step && rename(tmp, path) != 0) {
        step = "cannot rename the temporary file over it";
        e = errno;
    }
    if (step) {
        unlink(tmp);
        me_status st = me_error_set(err, ME_ERR_IO, "%s: %s (via %s): %s", path, step, tmp,
                                    e ? strerror(e) : "unknown error (short write)");
        free(tmp);
        return st;
    }
    free(tmp);
    remove_stale_temps(path);
    /* Make the rename itself durable. Best effort: the new file is complete and in place either way,
     * and some filesystems refuse fsync on a directory. */
    char *dir = dir_of(path);
    if (dir) {
        int fd = open(dir, O_RDONLY);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
        free(dir);
    }
    return ME_OK;
}

me_status me_file_write_atomic(const char *path, const void *data, size_t size, me_error *err) {
    me_file_chunk c = {data, size};
    return me_file_write_chunks(path, &c, 1, err);
}

me_status me_file_read_all(const char *path, const char *expected, char **out, size_t *size, me_error *err) {
    *out = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return me_error_set(err, ME_ERR_NOFILE, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        int e = errno;
        fclose(fp);
        return me_error_set(err, ME_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        fclose(fp);
        return me_error_set(err, ME_ERR_NOFILE, "%s: cannot read: %s", path, strerror(EISDIR));
    }
    /* Read to EOF rather than trusting st_size, so pipes and files that change size work too; one byte
     * more than the data for the terminating NUL. */
    size_t cap = 1 << 16;
    if (S_ISREG(sb.st_mode) && sb.st_size >= 0 && (uintmax_t)sb.st_size < (uintmax_t)SIZE_MAX - 1)
        cap = (size_t)sb.st_size + 2;
    char *buf = malloc(cap);
    size_t used = 0;
    for (;;) {
        if (!buf) {
            fclose(fp);
            return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap);
        }
        used += fread(buf + used, 1, cap - 1 - used, fp);
        if (ferror(fp)) {
            int e = errno;
            free(buf);
            fclose(fp);
            return me_error_set(err, ME_ERR_IO, "%s: cannot read: %s", path, strerror(e));
        }
        if (used < cap - 1) break; /* EOF */
        if (!S_ISREG(sb.st_mode) && used >= FILE_READ_NONREGULAR_MAX) { /* /dev/zero and the like never end */
            free(buf);
            fclose(fp);
            return me_error_set(err, ME_ERR_FORMAT, "%s: not a regular file and still going after 1 GiB, expected %s",
                                path, expected);
        }
        if (cap > SIZE_MAX / 2) {
            free(buf);
            fclose(fp);
            return me_error_set(err, ME_ERR_NOMEM, "%s: file too large to load", path);
        }
        cap *= 2;
        char *grown = realloc(buf, cap);
        if (!grown) free(buf);
        buf = grown;
    }
    if (fclose(fp) != 0) {
        int e = errno;
        free(buf);
        return me_error_set(err, ME_ERR_IO, "%s: cannot close: %s", path, strerror(e));
    }
    buf[used] = '\0';
    *out = buf;
    *size = used;
    return ME_OK;
}

me_path_kind me_file_probe(const char *path) {
    DIR *d = opendir(path);
    if (!d) return access(path, F_OK) == 0 ? ME_PATH_OTHER : ME_PATH_ABSENT;
    const struct dirent *e;
    me_path_kind kind = ME_PATH_EMPTY_DIR;
    while (kind == ME_PATH_EMPTY_DIR && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) kind = ME_PATH_NONEMPTY_DIR;
    closedir(d);
    return kind;
}

me_status me_file_mkdir_p(const char *path, me_error *err) {
    size_t n = strlen(path);
    char *tmp = malloc(n + 1);
    if (!tmp) return me_error_set(err, ME_ERR_NOMEM, "%s: out of memory", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0') continue;
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
            me_status st = me_error_set(err, ME_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
            free(tmp);
            return st;
        }
        tmp[i] = c;
    }
    free(tmp);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return me_error_set(err, ME_ERR_IO, "%s: exists and is not a directory, expected a directory", path);
    return ME_OK;
}
