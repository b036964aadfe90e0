// Small shared pieces of the demo's screens.

import { useCallback, useState } from "react";
import type { ReactNode } from "react";

import { useListener } from "./listen";

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs `action`, showing its error (the ApiError's message) in `setError`. */
export function useGuarded(): [string, (action: () => Promise<unknown>) => Promise<void>] {
  const [error, setError] = useState("");
  const guarded = useCallback(async (action: () => Promise<unknown>) => {
    setError("");
    try {
      await action();
    } catch (caught) {
      setError(messageOf(caught));
    }
  }, []);
  return [error, guarded];
}

export function Button(props: { label?: string; className?: string; action: () => void; children: ReactNode }): ReactNode {
  const ref = useListener<HTMLButtonElement, "click">("click", () => props.action());
  return (
    <button ref={ref} type="button" className={props.className} aria-label={props.label}>
      {props.children}
    </button>
  );
}

