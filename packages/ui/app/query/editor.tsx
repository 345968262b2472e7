/**
 * The PromQL editor: CodeMirror 6 with `@prometheus-io/codemirror-promql` for highlighting, linting and
 * completion of functions, metric names, label names and values (fetched from this server's Prometheus API
 * with the user's token). Enter runs the query, Shift+Enter starts a new line.
 */
import {
  acceptCompletion,
  autocompletion,
  closeBrackets,
  closeBracketsKeymap,
  closeCompletion,
  completionKeymap,
  completionStatus,
  selectedCompletion
} from "@codemirror/autocomplete"
import { defaultKeymap, history, historyKeymap, insertNewlineAndIndent } from "@codemirror/commands"
import { bracketMatching, HighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language"
import { EditorState, Prec } from "@codemirror/state"
import { drawSelection, EditorView, highlightSpecialChars, keymap, placeholder } from "@codemirror/view"
import { tags } from "@lezer/highlight"
import { PromQLExtension } from "@prometheus-io/codemirror-promql"
import { useEffect, useRef } from "preact/hooks"
import { getToken } from "../api.ts"

/** `fetch` for the completion's API calls, with the user's token. */
const fetchWithToken = (input: RequestInfo, init?: RequestInit): Promise<Response> => {
  const headers = new Headers(init?.headers)
  const token = getToken()
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`)
  return fetch(input, { ...init, headers })
}

/** One PromQL extension for all editors, so they share the completion's cache of names. */
let promql: PromQLExtension | undefined
const promqlExtension = (): PromQLExtension => {
  promql ??= new PromQLExtension().setComplete({
    remote: {
      url: "",
      fetchFn: fetchWithToken,
      lookbackInterval: 12 * 60 * 60 * 1000,
      httpErrorHandler: (error: unknown) => console.debug("PromQL completion:", error)
    }
  })
  return promql
}

/** Token colors from CSS variables (query.css), so one style serves the light and the dark theme. */
const highlight = HighlightStyle.define([
  { tag: tags.function(tags.variableName), color: "var(--pql-function)" },
  { tag: [tags.operatorKeyword, tags.modifier, tags.logicOperator], color: "var(--pql-keyword)" },
  { tag: tags.labelName, color: "var(--pql-label)" },
  { tag: tags.string, color: "var(--pql-string)" },
  { tag: tags.number, color: "var(--pql-number)" },
  { tag: [tags.operator, tags.arithmeticOperator], color: "var(--pql-operator)" },
  { tag: tags.comment, color: "var(--fg-muted)", fontStyle: "italic" },
  { tag: tags.invalid, color: "var(--error)" }
])

const theme = EditorView.theme({
  "&": { backgroundColor: "var(--bg)", color: "var(--fg)", border: "1px solid var(--border)", borderRadius: "6px" },
  "&.cm-focused": { outline: "none", borderColor: "var(--accent)" },
  ".cm-content": { fontFamily: "var(--mono)", fontSize: "13px", padding: "7px 0", caretColor: "var(--fg)" },
  ".cm-line": { padding: "0 8px" },
  ".cm-scroller": { fontFamily: "var(--mono)" },
  ".cm-placeholder": { color: "var(--fg-muted)" },
  "&.cm-focused .cm-cursor": { borderLeftColor: "var(--fg)" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection": { backgroundColor: "var(--pql-selection)" },
  ".cm-matchingBracket": { backgroundColor: "var(--pql-selection)", outline: "none" },
  ".cm-tooltip": { backgroundColor: "var(--bg-alt)", color: "var(--fg)", border: "1px solid var(--border)", borderRadius: "6px" },
  ".cm-tooltip-autocomplete > ul": { fontFamily: "var(--mono)", maxHeight: "16em" },
  ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "var(--accent)", color: "var(--accent-fg)" },
  ".cm-completionDetail": { color: "var(--fg-muted)", fontStyle: "normal", marginLeft: "1em" },
  ".cm-tooltip-autocomplete > ul > li[aria-selected] .cm-completionDetail": { color: "inherit" },
  ".cm-completionInfo": { maxWidth: "32em", padding: "6px 8px" }
})

/**
 * Enter: accept the selected completion if that would change the text; otherwise (no completion open, or it
 * names what is already typed) run the query.
 */
const enterKey = (run: () => void) => (view: EditorView): boolean => {
  const { state } = view
  if (completionStatus(state) === "active") {
    const completion = selectedCompletion(state)
    const head = state.selection.main.head
    const typed = /[A-Za-z0-9_:]*$/.exec(state.sliceDoc(Math.max(0, head - 200), head))?.[0] ?? ""
    const text = typeof completion?.apply === "string" ? completion.apply : completion?.label
    if (completion !== null && text !== typed) return acceptCompletion(view)
    closeCompletion(view)
  }
  run()
  return true
}

export interface EditorProps {
  /** The expression as the URL has it: shown on mount, and again when the URL changes to another. */
  readonly value: string
  /** Called with the text on each change. */
  readonly onDraft: (text: string) => void
  /** Enter: run the text. */
  readonly onRun: (text: string) => void
}

export const PromQLEditor = ({ value, onDraft, onRun }: EditorProps) => {
  const parent = useRef<HTMLDivElement>(null)
  const view = useRef<EditorView | undefined>(undefined)
  const callbacks = useRef({ onDraft, onRun })
  callbacks.current = { onDraft, onRun }

  useEffect(() => {
    const run = () => {
      const text = view.current?.state.doc.toString() ?? ""
      callbacks.current.onRun(text)
    }
    const editor = new EditorView({
      parent: parent.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          Prec.highest(keymap.of([
            { key: "Enter", run: enterKey(run) },
            { key: "Shift-Enter", run: insertNewlineAndIndent }
          ])),
          history(),
          drawSelection(),
          highlightSpecialChars(),
          indentOnInput(),
          bracketMatching(),
          closeBrackets(),
          autocompletion(),
          keymap.of([...closeBracketsKeymap, ...completionKeymap, ...historyKeymap, ...defaultKeymap]),
          placeholder("Expression (Enter runs it, Shift+Enter adds a line)"),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ "data-testid": "query-input", "aria-label": "PromQL expression" }),
          theme,
          syntaxHighlighting(highlight),
          promqlExtension().asExtension(),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) callbacks.current.onDraft(update.state.doc.toString())
          })
        ]
      })
    })
    view.current = editor
    return () => {
      editor.destroy()
      view.current = undefined
    }
  }, [])

  // The URL's expression changed (back/forward, or a link): show it.
  useEffect(() => {
    const editor = view.current
    if (editor !== undefined && editor.state.doc.toString() !== value) {
      editor.dispatch({ changes: { from: 0, to: editor.state.doc.length, insert: value } })
    }
  }, [value])

  return <div class="query-editor" ref={parent} />
}
