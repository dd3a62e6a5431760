from gonogo.cli import main

main()
