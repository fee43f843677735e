/* The binary stream the PyTorch parity scripts read (tests/nbdump.py). */
#ifndef NB_TEST_DUMP_H
#define NB_TEST_DUMP_H

#include <nabla.h>
#include <stdio.h>

void dump_u32(FILE *f, uint32_t v);
void dump_str(FILE *f, const char *s);
/* u8 present, u8 dtype, u8 requires_grad, u32 ndim, i64 shape[ndim], data */
void dump_tensor(FILE *f, const nb_tensor *t);

#endif
