"""The central station: model (fed by device messages), device links, web interface."""
