// SPDX-License-Identifier: MIT
// Names and texts of bu_err, generated from BU_ERR_TABLE.
#include "base/err.h"

static const char *const err_texts[] = {
#define BU_ERR_TEXT(name, text) text,
    BU_ERR_TABLE(BU_ERR_TEXT)
#undef BU_ERR_TEXT
};

static const char *const err_names[] = {
#define BU_ERR_NAME(name, text) #name,
    BU_ERR_TABLE(BU_ERR_NAME)
#undef BU_ERR_NAME
};

const char *
bu_strerror(int rv)
{
    if (rv < 0 || rv >= BU_ERR_COUNT) {
        return "unknown error";
    }
    return err_texts[rv];
}

const char *
bu_errname(int rv)
{
    if (rv < 0 || rv >= BU_ERR_COUNT) {
        return "BU_E?";
    }
    return err_names[rv];
}
