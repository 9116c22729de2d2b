// Issue 13 probe: the latency of one cgroup v1 migration (write "0" to cgroup.procs), alternating between two cgroups A and B,
// with GAP_MS of sleep before each. Build: gcc -O2 -o cgroup_move cgroup_move.c
// Usage: cgroup_move A/cgroup.procs B/cgroup.procs GAP_MS N   (N <= 1000; make A and B under /sys/fs/cgroup/pids/garden-bench-*)
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <stdlib.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
int main(int argc,char**argv){
  int a=open(argv[1],O_WRONLY), b=open(argv[2],O_WRONLY); int gap_ms=atoi(argv[3]); int n=atoi(argv[4]);
  double xs[1000];
  for(int i=0;i<n;i++){ usleep(gap_ms*1000); double t=now(); if(write(i%2?b:a,"0",1)!=1){perror("write");return 1;} xs[i]=now()-t; }
  for(int i=0;i<n;i++) printf("%.2f ", xs[i]); printf("\n"); return 0; }
