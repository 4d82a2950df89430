/* Data-parallel batch jobs (llmrt batch --data-parallel under mpirun): the input lines are dealt
 * round-robin to the job's groups of --tp ranks; each group's leader writes its own shard file
 * next to the output, and world rank 0 merges the shards into the output at the end. Resume
 * works per shard (and through the merged output): the dealing depends only on the line number
 * and the number of groups. */
#ifndef LLMRT_CLI_BATCH_SHARDS_H
#define LLMRT_CLI_BATCH_SHARDS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct batch_shards {
    bool    on;          /* --data-parallel */
    int32_t world_rank, world_size;
    int32_t n_groups, group; /* groups of tp ranks; this process's */
    char    shard_path[4096]; /* OUTPUT.dpG-of-N */
} batch_shards;

/* Places this process in the job; -1 with a message on stderr when the job's size is not a
 * multiple of tp, or MPI is unavailable. */
int  batch_shards_init(batch_shards *s, const char *out_path, int32_t tp);
/* Whether input line `line_no` (1-based) belongs to this process's group. */
bool batch_shards_owns(const batch_shards *s, int64_t line_no);
/* After every group finished (a barrier over the job): world rank 0 appends the shards' lines
 * whose custom_id the output does not hold yet, then removes the shards. 0 on success. */
int  batch_shards_merge(const batch_shards *s, const char *out_path);

#endif
