from hma_framework.cli import main

main()
