import { ObjectStore } from "@opendata/core"
import { conformance } from "./conformance.ts"

conformance("memory", () => ObjectStore.layerMemory)
