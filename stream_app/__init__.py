"""streamrec application: the Faust app, its agents, web views and the streamrec command."""
