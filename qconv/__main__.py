from qconv.cli import app

app()
