#include "dump.h"

#include <string.h>

void dump_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }

void dump_str(FILE *f, const char *s)
{
    dump_u32(f, (uint32_t)strlen(s));
    fwrite(s, 1, strlen(s), f);
}

void dump_tensor(FILE *f, const nb_tensor *t)
{
    uint8_t present = t != NULL;
    fwrite(&present, 1, 1, f);
    if (!t)
        return;
    uint8_t dt = (uint8_t)t->dtype, rg = nb_requires_grad(t);
    fwrite(&dt, 1, 1, f);
    fwrite(&rg, 1, 1, f);
    dump_u32(f, (uint32_t)t->ndim);
    fwrite(t->shape, sizeof(int64_t), (size_t)t->ndim, f);
    for (int64_t i = 0; i < nb_numel(t); i++) {
        double v = nb_get(t, i);
        switch (t->dtype) {
        case NB_F32: { float x = (float)v; fwrite(&x, 4, 1, f); break; }
        case NB_F64: fwrite(&v, 8, 1, f); break;
        case NB_I32: { int32_t x = (int32_t)v; fwrite(&x, 4, 1, f); break; }
        case NB_I64: { int64_t x = (int64_t)v; fwrite(&x, 8, 1, f); break; }
        default: { uint8_t x = (uint8_t)v; fwrite(&x, 1, 1, f); }
        }
    }
}
