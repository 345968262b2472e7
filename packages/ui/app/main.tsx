/** The web UI: a shared layout with navigation, and the Query, Logs and Status pages. */
import { render } from "preact"
import { useState } from "preact/hooks"
import { setAuthNeeded, setToken, useAuthNeeded } from "./api.ts"
import { LogsPage } from "./pages/logs.tsx"
import { QueryPage } from "./pages/query.tsx"
import { StatusPage } from "./pages/status.tsx"
import { navigate, onLinkClick, type Route, useRoute } from "./router.ts"
import "./styles.css"

const pages = [
  { path: "/query", title: "Query" },
  { path: "/logs", title: "Logs" },
  { path: "/status", title: "Status" }
] as const

const TokenDialog = () => {
  const [value, setValue] = useState("")
  return (
    <div class="token-dialog" data-testid="token-dialog">
      <form
        onSubmit={(event) => {
          event.preventDefault()
          setToken(value.trim())
          setAuthNeeded(false)
          location.reload()
        }}
      >
        <h2>Sign in</h2>
        <p>This server needs an API token. It is kept for this browser tab only.</p>
        <input
          type="password"
          autocomplete="off"
          placeholder="token"
          value={value}
          data-testid="token-input"
          onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
        />
        <button type="submit">Use token</button>
      </form>
    </div>
  )
}

const Page = ({ route }: { route: Route }) => {
  switch (route.path) {
    case "/query":
      return <QueryPage route={route} />
    case "/logs":
      return <LogsPage route={route} />
    case "/status":
      return <StatusPage />
    default:
      return <p class="notice">No page here. <a href="/query" onClick={onLinkClick}>Go to Query</a>.</p>
  }
}

const App = () => {
  const route = useRoute()
  const authNeeded = useAuthNeeded()
  if (route.path === "/" || route.path === "") {
    navigate("/query", true)
    return null
  }
  return (
    <>
      <header class="topbar">
        <a class="brand" href="/query" onClick={onLinkClick}>OpenData</a>
        <nav>
          {pages.map((page) => (
            <a
              key={page.path}
              href={page.path}
              onClick={onLinkClick}
              class={route.path === page.path ? "active" : undefined}
              data-testid={`nav-${page.title.toLowerCase()}`}
            >
              {page.title}
            </a>
          ))}
        </nav>
        <span class="spacer" />
        <button class="link" onClick={() => {
          setToken(undefined)
          setAuthNeeded(true)
        }}>Token</button>
      </header>
      <main>
        <Page route={route} />
      </main>
      {authNeeded ? <TokenDialog /> : null}
    </>
  )
}

render(<App />, document.getElementById("app")!)
