// Fiber scheduler for the host emulator (see emu.h). emu_run(f, args, grid, block) runs the
// wrapper f (which unpacks args and calls the kernel) once per thread of each block.
#include <ucontext.h>
#include <cstddef>
#include <memory>
#include <vector>

struct dim3 {
    unsigned x, y, z;
};
dim3 threadIdx, blockIdx, blockDim, gridDim;
double emu_lanes[1024];

namespace {
constexpr std::size_t STACK = 256 * 1024;
enum State { READY, AT_BARRIER, AT_WARP_BARRIER, DONE };
constexpr unsigned WARP = 32;
struct Fiber {
    ucontext_t ctx;
    State state;
};
ucontext_t sched;
std::vector<Fiber> fibers;
std::vector<std::unique_ptr<char[]>> stacks;
unsigned cur = 0;
void (*kernel_fn)(void**) = nullptr;
void** kernel_args = nullptr;

void entry() {
    kernel_fn(kernel_args);
    fibers[cur].state = DONE;
}
}  // namespace

void __syncthreads() {
    fibers[cur].state = AT_BARRIER;
    swapcontext(&fibers[cur].ctx, &sched);
}

void emu_syncwarp() {
    fibers[cur].state = AT_WARP_BARRIER;
    swapcontext(&fibers[cur].ctx, &sched);
}

// Releases every warp whose live lanes all wait at a warp barrier; returns whether any was.
// A warp where some lanes finished while others wait is divergent: flagged, and released.
static bool release_warps(unsigned block, int& status) {
    bool released = false;
    for (unsigned w = 0; w < block; w += WARP) {
        const unsigned end = w + WARP < block ? w + WARP : block;
        unsigned at = 0, done = 0;
        for (unsigned t = w; t < end; t++) {
            at += fibers[t].state == AT_WARP_BARRIER;
            done += fibers[t].state == DONE;
        }
        if (at == 0 || at + done < end - w) continue;  // none waiting, or some still elsewhere
        if (done > 0) status = 1;
        for (unsigned t = w; t < end; t++)
            if (fibers[t].state == AT_WARP_BARRIER) fibers[t].state = READY;
        released = true;
    }
    return released;
}

// Returns 0, or 1 when some threads of a block finished while others waited at a barrier
// (undefined behaviour on a GPU: a divergent __syncthreads).
extern "C" int emu_run(void (*f)(void**), void** args, unsigned grid, unsigned block) {
    kernel_fn = f;
    kernel_args = args;
    blockDim = {block, 1, 1};
    gridDim = {grid, 1, 1};
    if (fibers.size() < block) fibers.resize(block);
    while (stacks.size() < block) stacks.emplace_back(new char[STACK]);
    int status = 0;
    for (unsigned bx = 0; bx < grid; bx++) {
        blockIdx = {bx, 0, 0};
        for (unsigned t = 0; t < block; t++) {
            Fiber& fb = fibers[t];
            getcontext(&fb.ctx);
            fb.ctx.uc_stack.ss_sp = stacks[t].get();
            fb.ctx.uc_stack.ss_size = STACK;
            fb.ctx.uc_link = &sched;
            makecontext(&fb.ctx, entry, 0);
            fb.state = READY;
        }
        for (;;) {
            for (unsigned t = 0; t < block; t++) {
                if (fibers[t].state != READY) continue;
                cur = t;
                threadIdx = {t, 0, 0};
                swapcontext(&sched, &fibers[t].ctx);
            }
            if (release_warps(block, status)) continue;
            unsigned waiting = 0, done = 0;
            for (unsigned t = 0; t < block; t++) {
                if (fibers[t].state == AT_BARRIER || fibers[t].state == AT_WARP_BARRIER) waiting++;
                if (fibers[t].state == DONE) done++;
            }
            if (waiting == 0) break;
            if (done > 0) status = 1;
            for (unsigned t = 0; t < block; t++)
                if (fibers[t].state == AT_BARRIER || fibers[t].state == AT_WARP_BARRIER) fibers[t].state = READY;
        }
    }
    return status;
}
