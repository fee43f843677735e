/* Semi-supervised node classification with a graph convolutional network
 * (Kipf & Welling 2017) on Zachary's karate club: 34 members, 78 friendships,
 * and the two factions the club split into (Mr. Hi's and the Officer's).
 * Only two members are labelled, node 0 (Mr. Hi) and node 33 (the Officer);
 * the task is to predict the faction of the other 32 from the graph alone.
 *
 *   A_hat = D^-1/2 (A + I) D^-1/2           (nb_gcn_norm_adjacency)
 *   X = I (34 x 34): each node's feature is its own one-hot id
 *   logits = A_hat relu(A_hat X W1^T + b1) W2^T + b2    34 -> 16 -> 2
 *   loss = cross-entropy on nodes 0 and 33 only; Adam, lr 0.01, 200 steps
 *
 * Baselines, on the same 32 unlabelled nodes:
 *   - the same two-layer network without the graph (an MLP on the one-hot
 *     features): an unlabelled node's one-hot column never gets a gradient,
 *     so the MLP cannot generalise beyond chance-like guesses;
 *   - nearest labelled node by shortest path (hops; a tie goes to Mr. Hi);
 *   - label propagation: F <- A_hat F with the two labelled rows clamped to
 *     their one-hot labels, 100 iterations, then argmax (Zhou et al. 2004
 *     with A_hat as the propagation matrix), computed with nb_spmm.
 * The graph-free MLP is the honest "no graph" reference; the other two show
 * how much of the task the graph structure alone solves.
 *
 * Run: ./build/examples/gcn_karate [seeds] [first_seed] (default 5 seeds from
 * 1). Prints each seed's accuracies and the means; exits 1 if the GCN's mean
 * accuracy does not beat the MLP's. */
#include <nabla.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 34
#define E 78
#define HIDDEN 16
#define STEPS 200

/* The 78 undirected edges (0-based ids, as networkx's karate_club_graph). */
static const int64_t EDGES[E][2] = {
    {0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}, {0, 6}, {0, 7}, {0, 8}, {0, 10}, {0, 11}, {0, 12},
    {0, 13}, {0, 17}, {0, 19}, {0, 21}, {0, 31}, {1, 2}, {1, 3}, {1, 7}, {1, 13}, {1, 17},
    {1, 19}, {1, 21}, {1, 30}, {2, 3}, {2, 7}, {2, 8}, {2, 9}, {2, 13}, {2, 27}, {2, 28},
    {2, 32}, {3, 7}, {3, 12}, {3, 13}, {4, 6}, {4, 10}, {5, 6}, {5, 10}, {5, 16}, {6, 16},
    {8, 30}, {8, 32}, {8, 33}, {9, 33}, {13, 33}, {14, 32}, {14, 33}, {15, 32}, {15, 33},
    {18, 32}, {18, 33}, {19, 33}, {20, 32}, {20, 33}, {22, 32}, {22, 33}, {23, 25}, {23, 27},
    {23, 29}, {23, 32}, {23, 33}, {24, 25}, {24, 27}, {24, 31}, {25, 31}, {26, 29}, {26, 33},
    {27, 33}, {28, 31}, {28, 33}, {29, 32}, {29, 33}, {30, 32}, {30, 33}, {31, 32}, {31, 33},
    {32, 33}};
/* Each member's number of friends, from the same source: checks the list above. */
static const int DEGREE[N] = {16, 9, 10, 6, 3, 4, 4, 4, 5, 2, 3, 1, 2, 5, 2, 2, 2,
                              2,  2, 3,  2, 2, 2, 5, 3, 3, 2, 4, 3, 4, 4, 6, 12, 17};
/* Faction after the fission: 0 = Mr. Hi, 1 = Officer. */
static const int64_t FACTION[N] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0,
                                   0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
static const int64_t LABELLED[2] = {0, 33};

#define CHECK(expr)                                                                     \
    do {                                                                                \
        if (!(expr)) {                                                                  \
            fprintf(stderr, "gcn_karate: %s (line %d)\n", nb_last_error(ctx), __LINE__); \
            return -1;                                                                  \
        }                                                                               \
    } while (0)

/* accuracy over the 32 unlabelled nodes of the argmax of logits [N, 2] */
static double accuracy(const nb_tensor *logits)
{
    int right = 0;
    for (int i = 0; i < N; i++) {
        if (i == LABELLED[0] || i == LABELLED[1])
            continue;
        int pred = nb_get(logits, 2 * i + 1) > nb_get(logits, 2 * i) ? 1 : 0;
        right += pred == FACTION[i];
    }
    return right / (double)(N - 2);
}

typedef struct net {
    nb_module *l1, *l2;
    bool graph; /* GCN layers, or linear ones (the MLP baseline) */
} net;

static nb_tensor *net_forward(nb_ctx *ctx, const net *m, const nb_csr *adj, nb_tensor *x)
{
    if (!m->graph)
        return nb_module_forward(ctx, m->l2, nb_relu(ctx, nb_module_forward(ctx, m->l1, x)));
    return nb_gcn_forward(ctx, m->l2, adj, nb_relu(ctx, nb_gcn_forward(ctx, m->l1, adj, x)));
}

/* Trains the GCN (graph) or the MLP on the two labels; returns the accuracy
 * on the other 32 nodes, or -1 on an error. */
static double train(nb_ctx *ctx, const nb_csr *adj, nb_tensor *x, bool graph)
{
    net m = {graph ? nb_gcn_layer(ctx, "conv1", N, HIDDEN, true) : nb_linear(ctx, "fc1", N, HIDDEN, true),
             graph ? nb_gcn_layer(ctx, "conv2", HIDDEN, 2, true) : nb_linear(ctx, "fc2", HIDDEN, 2, true),
             graph};
    CHECK(m.l1 && m.l2);
    nb_optim_opts oo = nb_optim_opts_default(NB_OPT_ADAM);
    oo.lr = 0.01;
    nb_optim *opt = nb_optim_new(ctx, &oo);
    CHECK(opt && nb_optim_add_module(ctx, opt, m.l1, false) == NB_OK &&
          nb_optim_add_module(ctx, opt, m.l2, false) == NB_OK);
    for (int step = 0; step < STEPS; step++) {
        nb_arena_reset(ctx);
        nb_tensor *idx = nb_from_data(ctx, NB_I64, NB_SHAPE(2), LABELLED);
        nb_tensor *target = nb_from_data(ctx, NB_I64, NB_SHAPE(2), (const int64_t[]){0, 1});
        nb_tensor *logits = net_forward(ctx, &m, adj, x);
        nb_tensor *loss = nb_cross_entropy(ctx, nb_index_select(ctx, logits, 0, idx), target, NULL);
        CHECK(loss);
        nb_optim_zero_grad(opt);
        CHECK(nb_backward(ctx, loss) == NB_OK);
        CHECK(nb_optim_step(ctx, opt) == NB_OK);
    }
    nb_arena_reset(ctx);
    bool was = nb_set_grad_enabled(ctx, false);
    nb_tensor *logits = net_forward(ctx, &m, adj, x);
    nb_set_grad_enabled(ctx, was);
    CHECK(logits);
    double acc = accuracy(logits);
    nb_optim_free(ctx, opt);
    nb_module_free(ctx, m.l1);
    nb_module_free(ctx, m.l2);
    return acc;
}

/* nearest labelled node by hops (breadth-first search from each label) */
static double nearest_labelled(int *ties)
{
    int dist[2][N];
    for (int l = 0; l < 2; l++) {
        int queue[N], head = 0, tail = 0;
        for (int i = 0; i < N; i++)
            dist[l][i] = -1;
        dist[l][LABELLED[l]] = 0;
        queue[tail++] = (int)LABELLED[l];
        while (head < tail) {
            int u = queue[head++];
            for (int e = 0; e < E; e++) {
                int a = (int)EDGES[e][0], b = (int)EDGES[e][1];
                int v = a == u ? b : b == u ? a : -1;
                if (v >= 0 && dist[l][v] < 0) {
                    dist[l][v] = dist[l][u] + 1;
                    queue[tail++] = v;
                }
            }
        }
    }
    int right = 0;
    *ties = 0;
    for (int i = 1; i < N - 1; i++) {
        *ties += dist[0][i] == dist[1][i];
        int pred = dist[1][i] < dist[0][i] ? 1 : 0;
        right += pred == FACTION[i];
    }
    return right / (double)(N - 2);
}

/* label propagation with A_hat, the labelled rows clamped */
static double label_propagation(nb_ctx *ctx, const nb_csr *adj)
{
    nb_arena_reset(ctx);
    bool was = nb_set_grad_enabled(ctx, false);
    nb_tensor *f = nb_zeros(ctx, NB_F32, NB_SHAPE(N, 2));
    for (int it = 0; f && it <= 100; it++) {
        for (int l = 0; l < 2; l++) {
            nb_set(f, 2 * LABELLED[l] + l, 1.0);
            nb_set(f, 2 * LABELLED[l] + 1 - l, 0.0);
        }
        if (it < 100)
            f = nb_spmm(ctx, adj, f);
    }
    nb_set_grad_enabled(ctx, was);
    CHECK(f);
    return accuracy(f);
}

static int run(int seeds, uint64_t first)
{
    double sum_gcn = 0, sum_mlp = 0, nearest = 0, lp = 0;
    int ties = 0;
    for (int s = 0; s < seeds; s++) {
        nb_ctx_opts o = nb_ctx_opts_default();
        o.seed = first + (uint64_t)s;
        o.num_threads = 1; /* 34 nodes: threads would only add overhead */
        nb_ctx *ctx = nb_ctx_new(&o);
        if (!ctx)
            return 1;
        int64_t src[E], dst[E], deg[N] = {0};
        for (int e = 0; e < E; e++) {
            src[e] = EDGES[e][0];
            dst[e] = EDGES[e][1];
            deg[src[e]]++;
            deg[dst[e]]++;
        }
        for (int i = 0; i < N; i++)
            if (deg[i] != DEGREE[i]) {
                fprintf(stderr, "gcn_karate: node %d has %lld edges in the list, %d expected\n", i,
                        (long long)deg[i], DEGREE[i]);
                nb_ctx_free(ctx);
                return 1;
            }
        nb_csr *adj = nb_gcn_norm_adjacency(ctx, NB_F32, N, E, src, dst, true);
        nb_tensor *x = nb_buffer(ctx, NB_F32, NB_SHAPE(N, N)); /* one-hot ids (zero-filled) */
        double gcn = -1, mlp = -1;
        if (adj && x) {
            for (int i = 0; i < N; i++)
                nb_set(x, i * N + i, 1.0);
            gcn = train(ctx, adj, x, true);
            mlp = train(ctx, adj, x, false);
            if (s == 0) {
                lp = label_propagation(ctx, adj);
                nearest = nearest_labelled(&ties);
            }
        }
        if (gcn < 0 || mlp < 0 || lp < 0) {
            if (!adj || !x)
                fprintf(stderr, "gcn_karate: %s\n", nb_last_error(ctx));
            nb_csr_free(ctx, adj);
            nb_ctx_free(ctx);
            return 1;
        }
        printf("seed %llu: GCN %.3f  MLP (no graph) %.3f\n", (unsigned long long)o.seed, gcn, mlp);
        sum_gcn += gcn;
        sum_mlp += mlp;
        nb_csr_free(ctx, adj);
        nb_ctx_free(ctx);
    }
    printf("karate club, 2 labelled nodes (0 and 33), accuracy on the other 32 "
           "(mean of %d seeds):\n", seeds);
    printf("  %-40s %.3f\n", "GCN 34-16-2 on one-hot ids", sum_gcn / seeds);
    printf("  %-40s %.3f\n", "MLP 34-16-2 on one-hot ids (no graph)", sum_mlp / seeds);
    printf("  %-40s %.3f (%d ties, given to Mr. Hi)\n", "nearest labelled node by hops", nearest,
           ties);
    printf("  %-40s %.3f\n", "label propagation with A_hat", lp);
    if (sum_gcn <= sum_mlp) {
        printf("FAIL: the GCN does not beat the graph-free baseline\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int seeds = argc > 1 ? atoi(argv[1]) : 5;
    uint64_t first = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    if (seeds < 1) {
        fprintf(stderr, "usage: gcn_karate [seeds >= 1] [first_seed]\n");
        return 2;
    }
    return run(seeds, first);
}
