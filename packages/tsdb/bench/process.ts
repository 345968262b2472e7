/**
 * The TSDB benches' view of a process: its CPU seconds and memory from /proc (Linux), and `settle`, which
 * waits until a process's CPU stops growing (its deferred work done).
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"

/** Clock ticks per second (`getconf CLK_TCK`), the unit of /proc/<pid>/stat's CPU times. */
export const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100

/** Where a target's CPU and memory are read: this process (in-process) or a server process. */
export interface Meter {
  /** CPU seconds (user + system) so far. */
  readonly cpuS: () => number
  /** RSS in MiB: the server's peak so far, or this process's current one. */
  readonly rssMb: () => number
}

/** A server process: utime + stime (fields 14 and 15 of /proc/<pid>/stat, all threads) and VmHWM. */
export const processMeter = (pid: number): Meter => ({
  cpuS: () => {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // After the command name (in parentheses, which may hold spaces): fields[0] is field 3 (state), so
    // utime (field 14) is fields[11] and stime (field 15) fields[12].
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  },
  rssMb: () => statusMb(pid, "VmHWM")
})

/** A field of /proc/<pid>/status in MiB: `VmHWM` (peak resident memory) or `VmRSS` (resident now). */
export const statusMb = (pid: number, field: "VmHWM" | "VmRSS"): number => {
  const line = fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith(`${field}:`))
  return Number(line?.match(/(\d+)/)?.[1] ?? Number.NaN) / 1024
}

export interface Settled {
  /** The last CPU reading (seconds). */
  readonly cpuS: number
  /** CPU seconds spent while waiting. */
  readonly spentS: number
  /** How long it waited (seconds). */
  readonly waitedS: number
}

/**
 * Waits until the CPU stops growing: reads it every `intervalMs` until two consecutive readings differ by
 * less than `quietCpuS`, or `maxMs` have passed.
 */
export const settle = async (meter: Meter, options: { readonly intervalMs: number; readonly quietCpuS: number; readonly maxMs: number }): Promise<Settled> => {
  const start = performance.now()
  const first = meter.cpuS()
  let last = first
  for (;;) {
    await new Promise<void>((resolve) => setTimeout(resolve, options.intervalMs))
    const now = meter.cpuS()
    if (!(now - last >= options.quietCpuS) || performance.now() - start >= options.maxMs) {
      return { cpuS: now, spentS: now - first, waitedS: (performance.now() - start) / 1000 }
    }
    last = now
  }
}
