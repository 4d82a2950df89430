/* The planner's admission gate answer (planner.h), in a header of its own so the LoRA registry,
 * which answers for adapters, need not include the planner (request.h includes the registry). */
#ifndef LLMRT_ENGINE_PLAN_GATE_H
#define LLMRT_ENGINE_PLAN_GATE_H

/* An admission gate's answer for a waiting request (e.g. whether its LoRA adapter is, or
 * could be made, resident). */
typedef enum plan_gate {
    PLAN_ADMIT = 0, /* it may run */
    PLAN_WAIT  = 1, /* not now: admissions stop for this step (order is kept)     */
    PLAN_FAIL  = 2, /* never: the planner ends it with the reason given           */
} plan_gate;

#endif
