"""Long-lived exchanges: streamed responses and their cap and drain (`streams`), WebSocket
handshakes (`websocket`, `upgrade`), the byte tunnel and its frame tracking (`tunnel`,
`frames`), and the /docs/live demo page (`live_page`, `pages/`)."""
