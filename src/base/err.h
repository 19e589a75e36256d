// SPDX-License-Identifier: MIT
/*
 * Error codes shared by every module. Each fallible function returns a
 * bu_err; foreign codes (nng, SQLite, libsodium) are translated at the edge of
 * the module that calls the foreign library, so no other module sees them.
 * Names and messages come from one X-macro table and cannot drift apart.
 * Thread-safe: everything here is constant data.
 */
#ifndef BU_BASE_ERR_H
#define BU_BASE_ERR_H

#define BU_ERR_TABLE(X)                                                       \
    X(BU_OK, "ok")                                                            \
    X(BU_ENOMEM, "out of memory")                                             \
    X(BU_EINVAL, "invalid argument")                                          \
    X(BU_ENOENT, "not found")                                                 \
    X(BU_EEXIST, "already exists")                                            \
    X(BU_EIO, "input/output error")                                           \
    X(BU_EBUSY, "busy")                                                       \
    X(BU_EFULL, "limit reached")                                              \
    X(BU_ECLOSED, "closed")                                                   \
    X(BU_ETIMEDOUT, "timed out")                                              \
    X(BU_EPARSE, "malformed input")                                           \
    X(BU_ETOOBIG, "too large")                                                \
    X(BU_EAUTH, "authentication failed")                                      \
    X(BU_EEXPIRED, "token expired")                                           \
    X(BU_EKEY, "wrong key type")                                              \
    X(BU_ESIG, "bad signature")                                               \
    X(BU_EPERM, "permission denied")                                          \
    X(BU_ESTORE, "storage error")                                             \
    X(BU_ECORRUPT, "stored data is corrupt")                                  \
    X(BU_ECONNECT, "connection failed")                                       \
    X(BU_EPROTO, "protocol error")                                            \
    X(BU_EREVOKED, "token revoked")

enum bu_err {
#define BU_ERR_ENUM(name, text) name,
    BU_ERR_TABLE(BU_ERR_ENUM)
#undef BU_ERR_ENUM
        BU_ERR_COUNT
};

// bu_strerror returns a static, human-readable text for rv ("unknown error"
// for values outside the table). Never NULL.
const char *bu_strerror(int rv);

// bu_errname returns the symbolic name of rv ("BU_ENOMEM"), or "BU_E?".
const char *bu_errname(int rv);

#endif // BU_BASE_ERR_H
