/* The op table, generated from ops.def: names and backward functions. */
#include "core/internal.h"

#define NB_OP(ID, name) nb_status nb__##name##_backward(nb_ctx *ctx, nb__node *node);
#include "ops/ops.def"
#undef NB_OP

const nb__op_info nb__ops[NB__OP_COUNT] = {
#define NB_OP(ID, name) [NB__OP_##ID] = {#name, nb__##name##_backward},
#include "ops/ops.def"
#undef NB_OP
};

const char *nb__op_name(int op)
{
    return (op >= 0 && op < NB__OP_COUNT) ? nb__ops[op].name : NULL;
}

int nb__op_count(void) { return NB__OP_COUNT; }
