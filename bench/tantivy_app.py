"""The reference app of the scale benchmark: a minimal Falcon app over a tantivy index
(``TANTIVY_INDEX``), served by gunicorn with our settings, so the HTTP figures compare
search engines, not stacks. Bench-only (tantivy is in the ``bench`` extra)."""

from __future__ import annotations

import os
import re

import falcon
import tantivy


class Search:
    def __init__(self, index: tantivy.Index):
        self.index = index

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        words = re.findall(r"\w+", req.get_param("q") or "")
        results = []
        if words:
            searcher = self.index.searcher()
            # Lower-cased: AND, OR and NOT in capitals are tantivy query operators.
            query = self.index.parse_query(" ".join(words).lower(), ["question", "title", "answer"])
            for score, address in searcher.search(query, 10).hits:
                doc = searcher.doc(address)
                results.append({"id": doc["id"][0], "question": doc["question"][0], "score": score})
        resp.media = {"results": results}


def create_app() -> falcon.App:
    app = falcon.App()
    app.add_route("/v1/search", Search(tantivy.Index.open(os.environ["TANTIVY_INDEX"])))
    return app
