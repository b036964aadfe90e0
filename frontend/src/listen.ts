// Event handlers are attached with addEventListener through refs, not as `onClick`/`onSubmit`
// props: React keeps every host element's props on the DOM node itself (`__reactProps$…`), where
// any script of the page can reach them, and a handler is a function that calls the client. A
// listener added with addEventListener is reachable by no script.

import { useEffect, useRef } from "react";
import type { RefObject } from "react";

export function useListener<E extends HTMLElement, K extends keyof HTMLElementEventMap>(
  type: K,
  handler: (event: HTMLElementEventMap[K], element: E) => void,
): RefObject<E | null> {
  const ref = useRef<E>(null);
  const latest = useRef(handler);
  latest.current = handler;
  useEffect(() => {
    const element = ref.current;
    if (!element) return undefined;
    const listener = (event: HTMLElementEventMap[K]): void => latest.current(event, element);
    element.addEventListener(type, listener);
    return () => element.removeEventListener(type, listener);
  }, [type]);
  return ref;
}
