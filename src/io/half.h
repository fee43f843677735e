/* Element conversions for storage formats: float16 / bfloat16 <-> double,
 * and the safetensors dtypes (names, sizes, little-endian encode/decode).
 *
 * f16/bf16 narrowing rounds to nearest, ties to even, straight from the
 * double (one rounding, so a float64 tensor stored as f16 gets the correctly
 * rounded value, not the double-rounded one PyTorch gets by going through
 * float32). Overflow gives +-inf, NaN gives a quiet NaN of the same sign,
 * values below half the smallest subnormal round to +-0. Widening is exact. */
#ifndef NB_IO_HALF_H
#define NB_IO_HALF_H

#include "core/internal.h"

uint16_t nb__f16_from_double(double x);
uint16_t nb__bf16_from_double(double x);
double nb__f16_to_double(uint16_t h);
double nb__bf16_to_double(uint16_t h);

/* safetensors dtypes, in the reference's order of element size */
typedef enum nb__st_dtype {
    NB__ST_BOOL,
    NB__ST_F4,
    NB__ST_F6_E2M3,
    NB__ST_F6_E3M2,
    NB__ST_U8,
    NB__ST_I8,
    NB__ST_F8_E5M2,
    NB__ST_F8_E4M3,
    NB__ST_F8_E8M0,
    NB__ST_I16,
    NB__ST_U16,
    NB__ST_F16,
    NB__ST_BF16,
    NB__ST_I32,
    NB__ST_U32,
    NB__ST_F32,
    NB__ST_C64,
    NB__ST_F64,
    NB__ST_I64,
    NB__ST_U64,
    NB__ST_COUNT
} nb__st_dtype;

typedef struct nb__st_type {
    const char *name; /* "F32" */
    int bits;         /* per element */
    char kind;        /* 'f' float nabla reads, 'i' integer, 'b' bool, 'x' not readable */
    nb_dtype nb;      /* the nabla dtype of the same name, else NB_DTYPE_COUNT */
} nb__st_type;

extern const nb__st_type nb__st_types[NB__ST_COUNT];
int nb__st_lookup(const char *name);      /* -1 if unknown */
nb__st_dtype nb__st_from_nb(nb_dtype dt); /* F32 F64 F16 BF16 I32 I64 U8 */

void nb__st_wr_le(unsigned char *p, uint64_t v, int bytes);
uint64_t nb__st_rd_le(const unsigned char *p, int bytes);
/* Encode into a file element of dtype ft ('f' kinds / integer kinds). */
void nb__st_put_float(nb__st_dtype ft, unsigned char *p, double v);
void nb__st_put_int(nb__st_dtype ft, unsigned char *p, int64_t v);
/* Decode a file element. get_int: false for a U64 above INT64_MAX (in *u). */
double nb__st_get_float(nb__st_dtype ft, const unsigned char *p);
bool nb__st_get_int(nb__st_dtype ft, const unsigned char *p, int64_t *v, uint64_t *u);

/* A walk over a tensor's elements in row-major order, any strides. */
typedef struct nb__cursor {
    const nb_tensor *t;
    int64_t idx[NB_MAX_DIMS];
    int64_t step[NB_MAX_DIMS]; /* strides in bytes */
    char *p;                   /* the current element */
} nb__cursor;
void nb__cursor_init(nb__cursor *c, const nb_tensor *t);

/* Converts the next `count` elements of c's tensor (f32/f64 to a float ft,
 * i32/i64/u8 to an integer ft) into `out`. Returns -1, or the position
 * (0..count-1) of an integer that does not fit ft, with its value in *bad. */
int64_t nb__st_encode(nb__cursor *c, nb__st_dtype ft, unsigned char *out, int64_t count,
                      int64_t *bad);
/* Converts `count` file elements of dtype ft (kind 'f', 'i' or 'b') into the
 * next elements of c's tensor (floats into f32/f64 only; integers into any).
 * Returns -1, or the position of the failing element with *why = 1 (value
 * does not fit the tensor's dtype) or 2 (BOOL byte not 0 or 1), and the
 * value written into what[cap]. */
int64_t nb__st_decode(nb__cursor *c, nb__st_dtype ft, const unsigned char *in, int64_t count,
                      int *why, char *what, size_t cap);

bool nb__host_little_endian(void);

#endif
