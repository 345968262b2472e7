/**
 * Keeping a `Map` to a bound by forgetting its oldest entries (insertion order; a cache that refreshes an
 * entry by deleting and setting it again makes that least recently used first).
 *
 * Why not `map.delete(map.keys().next().value)` per insertion: V8 leaves a deleted entry as a hole in
 * the table until the table is next rebuilt, and a new iterator walks every hole before the first live
 * entry. A full cache evicting one entry per insertion walks ever more holes at the front: one profile of
 * series creation spent a fifth of its time there. Evicting a slice at a time walks them once per slice.
 */

/**
 * Deletes the oldest entries of `map` once it holds more than `max`: down to `max` less a sixty-fourth of
 * it (so that the next many insertions evict nothing). `evicted` is told each key that goes.
 */
export const trimOldest = <K, V>(map: Map<K, V>, max: number, evicted?: (key: K, value: V) => void): void => {
  if (map.size <= max) return
  let n = map.size - max + (max >>> 6)
  for (const [key, value] of map) {
    map.delete(key)
    evicted?.(key, value)
    if (--n === 0) break
  }
}
